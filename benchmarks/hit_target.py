"""Hitting a latency target: ``--cost latency --target-speedup S``, re-measured in a fresh process.

    python benchmarks/hit_target.py --models efficientnet_lite0 mobilenet_v2 --image-size 224 \
        --targets 1.3 1.6 --latency-target onnxruntime --threads 2

For each model and target speed-up S: ``transtailor prune --method random --weights none --epochs 0``
on the bundled digits (latency does not depend on the weights, and no training is needed to see
where the pruner stops), ``--cost latency --target-speedup S --latency-step 0.15``; then
``transtailor benchmark RUN`` in a new process times every sub-model against the original again.
A row gives the speed-up the run measured for its last sub-model, the fresh measurement (median
[min-max] over rounds), and whether the fresh one lands within ±10 % of S. Run folders go under
``--out``; the table is ``<out>/table.md``. A finished run is not redone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, markdown_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--targets", nargs="+", type=float, default=[1.3, 1.6])
    ap.add_argument("--latency-target", default="onnxruntime")
    ap.add_argument("--latency-batch", type=int, default=32)
    ap.add_argument("--round-to", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency-tries", type=int, default=3,
                    help="pruned copies timed per step before it is made (1: plan through the table alone)")
    ap.add_argument("--cache", default=str(RESULTS / "speed_for_macs" / "cache"),
                    help="latency table folder (shared with speed_for_macs.py)")
    ap.add_argument("--out", type=Path, default=RESULTS / "hit_target")
    args = ap.parse_args()
    rows = []
    for model in args.models:
        for target in args.targets:
            run = args.out / f"{model}-{args.image_size}-{args.latency_target}-{target:.2f}x"
            common = ["--latency-target", args.latency_target, "--latency-batch", str(args.latency_batch),
                      "--threads", str(args.threads)]
            if not (run / "summary.json").is_file():
                cmd = ["transtailor", "prune", "--method", "random", "--model", model, "--weights", "none",
                       "--epochs", "0", "--image-size", str(args.image_size), "--cache", "--cost", "latency",
                       "--target-speedup", str(target), "--latency-step", "0.15", "--round-to", str(args.round_to),
                       "--latency-tries", str(args.latency_tries),
                       "--latency-rounds", str(args.rounds), "--latency-cache", args.cache, *common,
                       *(["--resume", str(run)] if (run / "state.json").is_file() else ["--out", str(run)])]
                subprocess.run(cmd, check=True)
            if not (run / "latency.json").is_file():
                subprocess.run(["transtailor", "benchmark", str(run), "--rounds", str(args.rounds), *common],
                               check=True)
            its = json.loads((run / "iterations.json").read_text())
            summary = json.loads((run / "summary.json").read_text())
            fresh = json.loads((run / "latency.json").read_text())["models"][-1]
            lo, hi = fresh["speedup_batch_range"]
            rows.append([model, f"{target:.2f}", str(len(its) - 1), summary["stopped"],
                         f"{100 * its[-1]['flops_reduction']:.1f}", f"{its[-1].get('speedup_batch', 1.0):.2f}",
                         f"{fresh['speedup_batch']:.2f} [{lo:.2f}-{hi:.2f}]",
                         f"{fresh['speedup_b1']:.2f}",
                         "yes" if abs(fresh["speedup_batch"] / target - 1) <= 0.10 else "no"])
    head = (f"Command: `python benchmarks/hit_target.py {' '.join(sys.argv[1:])}`\n\n{args.latency_target}, "
            f"{args.image_size} px, batch {args.latency_batch}, {args.threads} threads, round-to {args.round_to}, "
            f"latency step 0.15, {args.latency_tries} tries a step, random scores and weights.\n\n")
    table = head + markdown_table(["model", "target", "steps", "stopped", "MACs red. %", "in-run speed-up",
                                   f"fresh b{args.latency_batch} speed-up", "fresh b1", "within ±10 %"], rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
