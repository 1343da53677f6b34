"""Speed for MACs: how much measured latency a MACs (or latency) budget buys, with and without round-to.

    python benchmarks/speed_for_macs.py --models efficientnet_lite0 mobilenet_v2 resnet50 --sizes 112 224 \
        --targets cpu onnxruntime --threads 2

Latency does not depend on the weights' values, so the models have random weights and the filters
random scores, ranked globally as the search ranks them (per-layer cap 0.3 per step). Each variant
is pruned in 10 % steps, as the search prunes, to each budget:

- ``macs``: 20 % and 40 % fewer MACs, with ``--round-to`` 1, 8 and 16;
- ``latency``: 20 % and 40 % off the latency table's total on the target (ranking by score per ms
  saved), with the same round-to values.

Then the original and every variant of one (model, size, target) are timed alternately in one
process (``transtailor.models.timing.compare_latency``: ``torch.utils.benchmark.Timer`` or ONNX
Runtime's session, ``--rounds`` rounds) at batch 1 and ``--batch``. A row gives the MACs
reduction, the median speed-up with its range over rounds, and the measured latency reduction
divided by the MACs reduction. Each finished (model, size, target) group is appended to
``<out>/results.jsonl`` at once and skipped when the script runs again; ``<out>/table.md`` is
rewritten after each.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from _common import RESULTS, markdown_table
from transtailor.methods.budget import macs_target
from transtailor.models import create_model
from transtailor.models.heads import replace_head
from transtailor.models.timing import TimingSetup, compare_latency, device_name
from transtailor.pruning import find_gate_sites
from transtailor.pruning.cost import LatencyCost, LatencyTable, MacCost
from transtailor.pruning.criteria import random_scores
from transtailor.pruning.pruner import prune_to_budget


def prune_in_steps(model, sites, scores, cost, budget: float, step: float, size: int, head: str, round_to: int,
                   cost_aware: bool):
    """Prune to ``budget`` off the cost's original total in ``step`` steps; return the kept scores' model."""
    total0 = cost.total(model)
    goal = (1.0 - budget) * total0
    for _ in range(int(round(budget / step)) + 3):
        now = cost.total(model)
        if now <= goal * 1.0005:
            break
        target = max(now - step * total0, goal) if isinstance(cost, LatencyCost) else \
            macs_target(now, total0, step, budget)
        record, scores = prune_to_budget(model, sites, scores, cost, target, size, head, cost_aware=cost_aware,
                                         max_fraction=0.3, round_to=round_to)
        if record.cost_after >= record.cost_before:
            break
    return model


def run_group(name: str, size: int, target: str, args) -> list[dict]:
    batch = args.batch if target != "cuda" else args.cuda_batch
    torch.manual_seed(0)
    bundle = create_model(name, None, "none")
    head = replace_head(bundle.model, 100)
    model = bundle.model.eval()
    sites = find_gate_sites(model, min(size, 64), exclude=(head,))
    scores = random_scores(model, sites, 0)
    setup = TimingSetup(target, batch, args.threads)
    table = LatencyTable(setup, args.cache)
    variants = {"original": model}
    info = {"original": {"cost": "-", "budget": 0.0, "round_to": 1}}
    macs0 = MacCost(size).total(model)
    for cost_name in args.costs:
        for budget in args.budgets:
            for rt in args.round_to:
                m = copy.deepcopy(model)
                if cost_name == "macs":
                    cost, aware = MacCost(size), False
                else:
                    cost, aware = LatencyCost(table, size, {s.conv for s in sites if s.kind != "conv"}), True
                t = time.perf_counter()
                prune_in_steps(m, sites, scores, cost, budget, 0.1, size, head, rt, aware)
                key = f"{cost_name}-{int(100 * budget)}-rt{rt}"
                variants[key] = m
                info[key] = {"cost": cost_name, "budget": budget, "round_to": rt,
                             "prune_seconds": time.perf_counter() - t}
                print(f"  pruned {key} in {time.perf_counter() - t:.0f} s", flush=True)
    rows = []
    for b in (1, batch):
        res = compare_latency(variants, "original", (b, 3, size, size), TimingSetup(target, b, args.threads),
                              rounds=args.rounds)
        for key, m in variants.items():
            macs = MacCost(size).total(m)
            red = 1.0 - macs / macs0
            lat_red = 1.0 - 1.0 / res[key].speedup
            rows.append({"model": name, "size": size, "target": target, "batch": b, "variant": key, **info[key],
                         "macs_reduction": red, "ms": res[key].ms, "speedup": res[key].speedup,
                         "speedup_min": res[key].speedup_min, "speedup_max": res[key].speedup_max,
                         "latency_per_mac": lat_red / red if red > 0 else None,
                         "device": device_name(target), "threads": args.threads, "rounds": args.rounds,
                         "command": "python benchmarks/speed_for_macs.py " + " ".join(sys.argv[1:])})
    return rows


def render(rows: list[dict], command: str) -> str:
    body = []
    for r in rows:
        body.append([r["model"], str(r["size"]), r["target"], str(r["batch"]), r["cost"],
                     f"{int(100 * r['budget'])}" if r["budget"] else "-", str(r["round_to"]),
                     f"{100 * r['macs_reduction']:.1f}", f"{r['ms']:.2f}",
                     f"{r['speedup']:.2f}x [{r['speedup_min']:.2f}-{r['speedup_max']:.2f}]",
                     f"{r['latency_per_mac']:.2f}" if r["latency_per_mac"] is not None else "-"])
    devices = sorted({f"{r['target']}: {r['device']}" for r in rows})
    commands = list(dict.fromkeys(r.get("command", f"python benchmarks/speed_for_macs.py {command}") for r in rows))
    head = ("Commands (rows in the order they ran): " + "; ".join(f"`{c}`" for c in commands) +
            f"\n\nDevices: {'; '.join(devices)}. "
            "Random weights and scores; speed-up = median over interleaved rounds [min-max]; "
            "lat/MAC = (1 - 1/speed-up) / MACs reduction.\n\n")
    return head + markdown_table(["model", "px", "target", "batch", "cost", "budget %", "round-to", "MACs red. %",
                                  "ms", "speed-up", "lat/MAC"], body) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0", "mobilenet_v2", "resnet50"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[112, 224])
    ap.add_argument("--targets", nargs="+", default=["cpu", "onnxruntime"])
    ap.add_argument("--costs", nargs="+", default=["macs", "latency"])
    ap.add_argument("--budgets", nargs="+", type=float, default=[0.2, 0.4])
    ap.add_argument("--round-to", nargs="+", type=int, default=[1, 8, 16])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--cuda-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cache", default=None, help="latency table folder (default: the package's)")
    ap.add_argument("--out", type=Path, default=RESULTS / "speed_for_macs")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    done = {(r["model"], r["size"], r["target"]) for r in rows}
    for target in args.targets:
        for name in args.models:
            for size in args.sizes:
                if (name, size, target) in done:
                    continue
                print(f"{name} {size}px on {target}", flush=True)
                new = run_group(name, size, target, args)
                with path.open("a") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in new)
                rows += new
                (args.out / "table.md").write_text(render(rows, " ".join(sys.argv[1:])))
    print(render(rows, " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
