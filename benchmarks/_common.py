"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import sys
from pathlib import Path

from transtailor.reporting import markdown_table, mean_std  # noqa: F401  (re-exported for the scripts)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        sys.exit(f"{path} is missing: these benchmarks read the data sets in ../shared/data beside the project")
    return path
