"""Why the β pass costs more than an α epoch: both timed on the same batches, alternately, one process.

    python benchmarks/beta_pass_cost.py --run benchmarks/results/importance-cost-caltech101/ft-s0 \
        --data ../shared/data/caltech101 --batches 20 --rounds 5 --threads 2

Reads ``--batches`` train batches into memory once (so that data loading is out of the comparison),
then, for ``--rounds`` rounds, times an α epoch over them (``train_alpha``: forward, backward, SGD
step; the model in train mode with frozen BatchNorms) and the β pass over them (``compute_beta``:
forward and ``autograd.grad`` in eval mode, accumulation), and the β pass's parts on their own: the
same pass in train mode, and forward + backward alone. Prints the median seconds per batch with the
range, and the operators that differ most between the two (``torch.profiler``). Writes the table to
``--out`` (default ``benchmarks/results/beta_pass_cost.md``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from transtailor.data import build_data
from transtailor.models.serialize import load_bundle
from transtailor.pruning.gates import Gates, find_gate_sites
from transtailor.pruning.importance import compute_beta, train_alpha
from transtailor.training.loop import set_train_mode


def _plain_backward(model, sites, batches, train: bool) -> None:
    """Forward and backward with gates at 1 and nothing else: the floor both passes stand on."""
    gates = Gates.constant(model, sites, 1.0, trainable=True).attach(model)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    set_train_mode(model) if train else model.eval()
    try:
        for x, y in batches:
            grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(gates.parameters()))
            del grads
    finally:
        gates.detach()
        for p in frozen:
            p.requires_grad_(True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finetune run folder (its model.pt) or a model file")
    ap.add_argument("--data", required=True)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/beta_pass_cost.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.run)
    bundle = load_bundle(path / "model.pt" if path.is_dir() else path)
    model = bundle.model
    data = build_data(args.data, image_size=args.image_size, mean=bundle.mean, std=bundle.std, cache=True,
                      workers=0, batch_size=32)
    batches = []
    for x, y in data.train_loader:
        batches.append((x, y))
        if len(batches) == args.batches:
            break
    sites = find_gate_sites(model, 64, exclude=(bundle.head,))
    for p in model.parameters():
        p.requires_grad_(True)

    def alpha() -> None:
        train_alpha(model, sites, batches, torch.device("cpu"), epochs=1)

    def beta() -> None:
        gates = Gates.constant(model, sites, 1.0)
        compute_beta(model, gates, batches, torch.device("cpu"), "per-batch")

    runs = {"alpha epoch (train_alpha)": alpha, "beta pass (compute_beta)": beta,
            "forward+grad, eval mode": lambda: _plain_backward(model, sites, batches, train=False),
            "forward+grad, train mode": lambda: _plain_backward(model, sites, batches, train=True)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    alpha()  # warm-up
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) / len(batches))
    ref = statistics.median(times["alpha epoch (train_alpha)"])
    lines = [f"# α epoch against β pass, {len(batches)} batches of 32 in memory, {args.image_size} px, "
             f"{args.threads} threads, {args.rounds} alternating rounds", "",
             "| pass | ms per batch, median [min-max] | ÷ α epoch |", "|---|---|---|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {1000 * med:.1f} [{1000 * min(ts):.1f}-{1000 * max(ts):.1f}] | {med / ref:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    for name in ("alpha epoch (train_alpha)", "beta pass (compute_beta)"):
        with torch.profiler.profile() as prof:
            runs[name]()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        print(f"## {name}\n\n```\n{table}\n```\n")
        text += f"\n## {name}: operators by self CPU time\n\n```\n{table}\n```\n"
    args.out.write_text(text)


if __name__ == "__main__":
    main()
