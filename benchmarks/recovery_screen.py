"""A one-seed screen of --recover-epochs on cub100: FT-Full against the search's sub-model before and after
recovery. Writes ``table.md`` in the screen's folder.

    R=benchmarks/results/recovery-screen-cub100
    transtailor finetune --mode full --data ../shared/data/cub100 --model efficientnet_lite0 --image-size 112 \\
        --epochs 12 --cache --threads 1 --workers 0 --no-latency --seed 0 --out $R/ft-full-12ep-s0
    transtailor search --data ../shared/data/cub100 --model efficientnet_lite0 --image-size 112 --epochs 4 \\
        --cache --threads 1 --workers 0 --no-latency --seed 0 --target-flops-reduction 0.4 --stop-rule none \\
        --recover-epochs 8 --out $R/search-40-recover8-s0
    python benchmarks/recovery_screen.py $R
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import markdown_table


def main() -> None:
    root = Path(sys.argv[1])
    full = json.loads((root / "ft-full-12ep-s0" / "summary.json").read_text())
    search = root / "search-40-recover8-s0"
    its = json.loads((search / "iterations.json").read_text())
    summary = json.loads((search / "summary.json").read_text())
    rows = [["FT-Full, 12 epochs", "0.0", f"{full['val_top1']:.2f}", f"{full['test_top1']:.2f}", "12 full"]]
    for r in its:
        epochs = "4 head" if r["iteration"] == 0 else f"4 head + {4 * r['iteration']} full since FT"
        rows.append([f"search iteration {r['iteration']}", f"{100 * r['flops_reduction']:.1f}",
                     f"{r['val_top1']:.2f}", f"{r['test_top1']:.2f}", epochs])
    n = len(its) - 1
    rows.append([f"iteration {summary['best_iteration']} after --recover-epochs 8",
                 f"{100 * summary['flops_reduction']:.1f}", f"{summary['val_top1']:.2f}",
                 f"{summary['test_top1']:.2f}", f"4 head + {4 * n + 8} full since FT"])
    table = markdown_table(["model", "MACs fewer %", "val top-1 %", "test top-1 %", "training epochs"], rows)
    (root / "table.md").write_text("cub100, efficientnet_lite0 at 112 px, seed 0, dev CPU (one seed: a hint)\n\n"
                                   + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
