"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        sys.exit(f"{path} is missing: these benchmarks read the data sets in ../shared/data beside the project")
    return path


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
