"""Cost of attaching β during fine-tuning: training steps with each --importance-ft vs plain.

    python benchmarks/overhead.py --model efficientnet_lite0 --image-size 112 --batch-size 32 --steps 20 --repeats 5

Times the same ``--steps`` training steps (same batch, same model) per formulation, interleaving
the formulations over ``--repeats`` rounds so that machine noise hits all alike, and reports the
median time per step relative to plain fine-tuning. Writes benchmarks/results/overhead.md.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.functional as F

from _common import RESULTS, add_timing_args, benchmark_parser, markdown_table
from transtailor.models import create_model
from transtailor.pruning import find_gate_sites
from transtailor.pruning.criteria import random_scores
from transtailor.pruning.importance_ft import attach_importance
from transtailor.training import make_sgd, param_groups, set_train_mode


def main() -> None:
    ap = benchmark_parser(__doc__)
    add_timing_args(ap)
    args = ap.parse_args()
    torch.manual_seed(0)
    b = create_model(args.model, num_classes=101)
    sites = find_gate_sites(b.model, 64, exclude=(b.head,))
    beta = random_scores(b.model, sites, seed=0)  # any positive per-filter values do for timing
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 101, (args.batch_size,))
    modes = ["none", "preserve", "normalized"]
    models = {}
    for mode in modes:
        m = copy.deepcopy(b.model)
        attach_importance(m, sites, beta, mode)
        models[mode] = (m, make_sgd(param_groups(m, b.head, 0.05, 0.005)))
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            m, opt = models[mode]
            set_train_mode(m)
            t = time.perf_counter()
            for _ in range(args.steps):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(x), y).backward()
                opt.step()
            times[mode].append((time.perf_counter() - t) / args.steps)
    base = statistics.median(times["none"])
    rows = [[m, f"{1000 * statistics.median(t):.1f}", f"{statistics.median(t) / base:.3f}"] for m, t in times.items()]
    head = (f"{args.model}, {args.image_size} px, batch {args.batch_size}, {len(sites)} gate sites, "
            f"{torch.get_num_threads()} threads, median of {args.repeats} x {args.steps} steps\n\n")
    table = markdown_table(["importance-ft", "ms / step", "vs plain"], rows)
    (RESULTS / "overhead.md").write_text(head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
