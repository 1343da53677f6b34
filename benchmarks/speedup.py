"""Real CPU speed-up of every sub-model of a search (or prune) run against the original model.

    python benchmarks/speedup.py benchmarks/results/search/caltech101-s0 --threads 2 --rounds 5

Loads each iteration's model.pt (iteration 0 is the FT model: the original architecture) and times
a forward pass at batch 1 and batch 32, interleaving the models over ``--rounds`` rounds so that
machine noise hits all alike; reports the median of the per-round medians next to each model's
FLOPs reduction. Run it on a machine with nothing else running. Writes benchmarks/results/speedup.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from _common import RESULTS, markdown_table
from transtailor import load_model
from transtailor.config import load_yaml
from transtailor.models.measure import measure_latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders with iter_NNN/model.pt")
    ap.add_argument("--image-size", type=int, default=None, help="default: the run's image size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "speedup.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for run in args.runs:
        iterations = json.loads((run / "iterations.json").read_text())
        size = args.image_size or int(load_yaml(run / "config.yaml")["image_size"])
        models = {it["iteration"]: load_model(run / f"iter_{it['iteration']:03d}" / "model.pt").eval()
                  for it in iterations}
        times: dict[int, dict[int, list[float]]] = {i: {1: [], 32: []} for i in models}
        for _ in range(args.rounds):
            for i, m in models.items():
                for b in (1, 32):
                    times[i][b].append(measure_latency(m, size, batch_size=b, repeats=5 if b == 1 else 2, warmup=1))
        summary = run / "summary.json"
        best = json.loads(summary.read_text())["best_iteration"] if summary.is_file() else None
        med = {i: {b: statistics.median(t) for b, t in d.items()} for i, d in times.items()}
        for it in iterations:
            i = it["iteration"]
            rows.append([run.name, str(i), f"{100 * it['flops_reduction']:.1f}", f"{it['macs'] / 1e6:.1f}",
                         f"{it['params'] / 1e6:.2f}", f"{med[i][1]:.2f}", f"{med[0][1] / med[i][1]:.2f}x",
                         f"{med[i][32]:.1f}", f"{med[0][32] / med[i][32]:.2f}x",
                         "yes" if i == best else ""])
    head = (f"CPU latency, {args.threads} threads, median over {args.rounds} interleaved rounds; "
            f"command: python benchmarks/speedup.py {' '.join(sys.argv[1:])}\n\n")
    table = markdown_table(["run", "iteration", "FLOPs red. %", "MMACs", "M params", "b1 ms", "b1 speed-up",
                            "b32 ms", "b32 speed-up", "best"], rows)
    args.out.write_text(head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
