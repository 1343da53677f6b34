"""Training throughput of TransTailor's loop against a bare PyTorch loop, same model, data and threads.

    python benchmarks/throughput.py --model efficientnet_lite0 --image-size 112 --batch-size 32 --steps 20 --repeats 5

Both loops read the same in-memory loader (uint8 images at the cache's resolution, with the train
transform: random crop and flip), so the data cost is the one ``--cache`` gives. Rows:

- ``bare``: the 20-line loop (forward, cross-entropy, zero_grad, backward, step);
- ``transtailor``: :func:`transtailor.training.train_epoch` as every phase uses it (schedule, NaN
  check, loss/accuracy bookkeeping, progress bar);
- ``transtailor + importance (MODE)``: the same with β attached as in importance-aware fine-tuning.

The loops alternate over ``--repeats`` rounds so that machine noise hits all alike; the table gives
the median images/s and the ratio to ``bare``. Writes benchmarks/results/throughput.md.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from _common import RESULTS, add_timing_args, benchmark_parser, markdown_table
from transtailor.data.datasets import TensorImageDataset
from transtailor.data.sampling import TrainSampler
from transtailor.data.transforms import build_transform, resize_size
from transtailor.models import create_model
from transtailor.pruning import find_gate_sites
from transtailor.pruning.criteria import random_scores
from transtailor.pruning.importance_ft import attach_importance
from transtailor.training import make_schedule, make_sgd, param_groups, train_epoch


def bare_epoch(model, loader, opt):
    model.train()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = benchmark_parser(__doc__)
    add_timing_args(ap)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--modes", nargs="*", default=["preserve", "normalized"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b = create_model(args.model, num_classes=101)
    side = resize_size(args.image_size, 0.875)
    n = args.steps * args.batch_size
    tensors = [torch.randint(0, 256, (3, side, side), dtype=torch.uint8) for _ in range(n)]
    tf = build_transform(args.image_size, 0.875, b.mean, b.std, train=True, resized=True)
    ds = TensorImageDataset(tensors, [i % 101 for i in range(n)], tf)
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=TrainSampler(ds, 0), drop_last=True)
    device = torch.device("cpu")

    sites = find_gate_sites(b.model, 64, exclude=(b.head,))
    beta = random_scores(b.model, sites, seed=0)  # any positive per-filter values do for timing
    loops = {}
    for name in ["bare", "transtailor"] + [f"transtailor + importance ({m})" for m in args.modes]:
        m = copy.deepcopy(b.model)
        if "importance" in name:
            attach_importance(m, sites, beta, name.split("(")[1].rstrip(")"))
        opt = make_sgd(param_groups(m, b.head, 0.05, 0.005), 0.9, 0.005)
        if name == "bare":
            loops[name] = (lambda m=m, opt=opt: bare_epoch(m, loader, opt))
        else:
            sched = make_schedule(opt, "cosine", 10**6)
            loops[name] = (lambda m=m, opt=opt, sched=sched: train_epoch(m, loader, opt, device, scheduler=sched))
    for run in loops.values():  # warm-up: allocator, kernels
        run()
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(args.repeats):
        for name, run in loops.items():
            t = time.perf_counter()
            run()
            times[name].append(n / (time.perf_counter() - t))
    base = statistics.median(times["bare"])
    rows = [[k, f"{statistics.median(v):.1f}", f"{min(v):.1f}-{max(v):.1f}", f"{statistics.median(v) / base:.3f}"]
            for k, v in times.items()]
    head = (f"{args.model}, {args.image_size} px, batch {args.batch_size}, CPU, {torch.get_num_threads()} threads, "
            f"median of {args.repeats} x {args.steps} steps (images/s, data loading included)\n\n")
    table = markdown_table(["loop", "images/s", "range", "vs bare"], rows)
    (RESULTS / "throughput.md").write_text(head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
