"""Table of ``benchmarks/importance_cost.sh``: the paper's β against Taylor (β at α = 1), one step.

    python benchmarks/importance_cost.py benchmarks/results/importance-cost-caltech101

For each seed: the seconds of each importance (α training + β pass) in fine-tuning epochs (one
FT-Full epoch's training seconds), the validation and test top-1 of the model pruned by 10 % of its
FLOPs before any fine-tuning, and how many of the removed channels the two share. Writes
``table.md`` beside the runs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def _read(path: Path):
    return json.loads(path.read_text())


def _removed(run: Path) -> set[tuple[str, int]]:
    removed = _read(run / "iter_001" / "pruning.json")["removed_channels"]
    return {(k, c) for k, v in removed.items() for c in v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    args = ap.parse_args()
    seeds = sorted(int(m.group(1)) for p in args.root.glob("taylor-s*") if (m := re.fullmatch(r"taylor-s(\d+)", p.name)))
    lines = [f"# β against Taylor, one 10 % step, no fine-tuning after it ({args.root.name})", "",
             "| seed | importance | seconds | fine-tuning epochs | FLOPs fewer % | val top-1 % | test top-1 % |",
             "|---|---|---|---|---|---|---|"]
    shared = []
    for s in seeds:
        epoch = next(r["train_seconds"] for r in map(json.loads, (args.root / f"epoch-s{s}" / "metrics.jsonl")
                                                       .read_text().splitlines()) if r.get("epoch") == 1)
        ft = _read(args.root / f"ft-s{s}" / "summary.json")
        lines.append(f"| {s} | FT (unpruned) | - | - | 0.0 | {ft['val_top1']:.2f} | {ft['test_top1']:.2f} |")
        for imp in ("beta", "taylor"):
            rec = _read(args.root / f"{imp}-s{s}" / "iterations.json")[1]
            secs = rec.get("seconds_alpha", 0.0) + rec.get("seconds_beta", 0.0) + rec.get("seconds_score", 0.0)
            lines.append(f"| {s} | {imp} | {secs:.1f} | {secs / epoch:.2f} | {100 * rec['flops_reduction']:.1f} | "
                         f"{rec['val_top1']:.2f} | {rec['test_top1']:.2f} |")
        a, b = _removed(args.root / f"beta-s{s}"), _removed(args.root / f"taylor-s{s}")
        shared.append(f"- seed {s}: β removed {len(a)} channels, Taylor {len(b)}; {len(a & b)} in both "
                      f"({100 * len(a & b) / len(a):.0f} % of β's); one FT-Full epoch trained in {epoch:.1f} s")
    text = "\n".join(lines + [""] + shared) + "\n"
    print(text)
    (args.root / "table.md").write_text(text)


if __name__ == "__main__":
    main()
