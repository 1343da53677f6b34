"""Greedy or knapsack: which selection spends a latency budget better?

    python benchmarks/selection.py --model efficientnet_lite0 --image-size 224 --latency-target onnxruntime \
        --threads 2 --steps 0.1 0.2 0.3 --seeds 0 1 2 3 4

One pruning step from the unpruned model, scored by random scores (``--seeds``) and by the filters'
L1 norms of the pretrained weights, with the latency table of the target (cached; entries missing
are measured). Both selections get the same groups, ladders of allowed widths (``--round-to``,
per-layer cap 0.3) and table costs, and must save ``step`` of the table's total. A row gives the
score each removes (lower is better: the same time saved for less importance lost) and the table
time it saves; the knapsack is exact on the discretised savings (HALP's formulation), the greedy
is :func:`transtailor.pruning.pruner.select`. Writes ``benchmarks/results/selection-<model>-<size>-<target>.md``.
"""

from __future__ import annotations

import statistics
import sys

import torch

from _common import RESULTS, benchmark_parser, markdown_table
from transtailor.models import create_model
from transtailor.models.timing import TimingSetup
from transtailor.pruning import find_gate_sites
from transtailor.pruning.cost import LatencyCost, LatencyTable
from transtailor.pruning.criteria import l1_scores, random_scores
from transtailor.pruning.pruner import round_problem, select, select_knapsack


def outcome(scores, ladders, costs, kept):
    loss = sum(float(torch.sort(s).values[: len(s) - k].sum()) for s, k in zip(scores, kept))
    saved = sum(c[0] - c[([len(s)] + w).index(k)] for s, w, c, k in zip(scores, ladders, costs, kept))
    return loss, saved


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--latency-target", default="onnxruntime")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--round-to", type=int, default=16)
    ap.add_argument("--steps", nargs="+", type=float, default=[0.1, 0.2, 0.3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--cache", default=str(RESULTS / "speed_for_macs" / "cache"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bundle = create_model(args.model, None, "default")
    model, head = bundle.model.eval(), bundle.head
    sites = find_gate_sites(model, 64, exclude=(head,))
    table = LatencyTable(TimingSetup(args.latency_target, args.batch, args.threads), args.cache)
    cost = LatencyCost(table, args.image_size, {s.conv for s in sites if s.kind != "conv"})
    total = cost.total(model)
    criteria = {f"random s{seed}": random_scores(model, sites, seed) for seed in args.seeds}
    criteria["L1 (pretrained)"] = l1_scores(model, sites)
    rows, ratios = [], {step: [] for step in args.steps}
    for step in args.steps:
        for name, scores in criteria.items():
            rp = round_problem(model, {s.module for s in sites}, scores, cost, args.image_size, head,
                               max_fraction=0.3, round_to=args.round_to)
            problem = (rp.scores, rp.ladders, rp.costs)
            need, floor = step * total, LatencyCost.min_saving_share * total
            greedy = outcome(*problem, select(*problem, need, True, floor))
            knap = outcome(*problem, select_knapsack(*problem, need, floor))
            ratios[step].append(knap[0] / greedy[0] if greedy[0] else 1.0)
            rows.append([f"{int(100 * step)}", name, f"{greedy[0]:.4g}", f"{100 * greedy[1] / total:.1f}",
                         f"{knap[0]:.4g}", f"{100 * knap[1] / total:.1f}", f"{knap[0] / greedy[0]:.3f}"])
    head_txt = (f"Command: `python benchmarks/selection.py {' '.join(sys.argv[1:])}`\n\n{args.model} at "
                f"{args.image_size} px, {args.latency_target} table at batch {args.batch}, {args.threads} threads, "
                f"round-to {args.round_to}; table total {total:.1f} ms; score removed (lower is better) and "
                "table time saved (% of total).\n\n")
    summary = "\n\nknapsack / greedy score removed, median over criteria: " + ", ".join(
        f"{int(100 * s)} %: {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})"
        for s, r in ratios.items())
    text = head_txt + markdown_table(["step %", "scores", "greedy removed", "greedy saved %", "knapsack removed",
                                      "knapsack saved %", "knapsack / greedy"], rows) + summary + "\n"
    out = RESULTS / f"selection-{args.model}-{args.image_size}-{args.latency_target}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
