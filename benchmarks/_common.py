"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import argparse
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


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares: ``--model`` and ``--image-size``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=112)
    return ap


def add_timing_args(ap: argparse.ArgumentParser, steps: int = 20, repeats: int = 5) -> None:
    """``--batch-size``, ``--steps`` and ``--repeats`` of the step-timing benchmarks."""
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--repeats", type=int, default=repeats)
