"""Test top-1 of iterative pruning runs at each FLOPs budget, mean ± std over their seeds.

    python benchmarks/budget_table.py --budgets 0.1,0.2,0.3 \\
        taylor-weight='benchmarks/results/taylor-weight-cub10/s*' \\
        taylor='benchmarks/results/compare-cub10/taylor-30-s*'

Each argument is LABEL=GLOB: the run folders (of `transtailor prune` or `search`) that make one row.
A budget's cell reads, in every run, the iteration whose FLOPs reduction is closest to it (within one
percentage point; a run that never got there leaves the cell without it). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import glob
import sys

from _common import markdown_table, mean_std
from transtailor.records import IterationRecord
from transtailor.reporting.tables import load_iterations


def at_budget(iterations: list[IterationRecord], budget: float) -> IterationRecord | None:
    near = min(iterations, key=lambda r: abs(r.flops_reduction - budget))
    return near if abs(near.flops_reduction - budget) <= 0.01 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", nargs="+", metavar="LABEL=GLOB")
    ap.add_argument("--budgets", default="0.1,0.2,0.3", help="comma-separated FLOPs reductions")
    args = ap.parse_args()
    args.budgets = [float(b) for b in args.budgets.split(",")]
    header = ["method", "runs"] + [f"test top-1 % at {b:.0%}" for b in args.budgets]
    body = []
    for spec in args.rows:
        label, sep, pattern = spec.partition("=")
        folders = sorted(glob.glob(pattern))
        if not sep or not folders:
            sys.exit(f"{spec!r}: expected LABEL=GLOB matching run folders")
        runs = [load_iterations(f) for f in folders]
        cells = []
        for b in args.budgets:
            hits = [r for r in (at_budget(it, b) for it in runs) if r is not None]
            cells.append(mean_std([r.test_top1 for r in hits]) + ("" if len(hits) == len(runs) else f" (n={len(hits)})"))
        body.append([label, str(len(runs))] + cells)
    print(markdown_table(header, body))


if __name__ == "__main__":
    main()
