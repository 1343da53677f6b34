"""β three ways, each twice with another batch order: what each costs, what it prunes, how stable that is.

    python benchmarks/beta_variants.py --ft benchmarks/results/importance-cost-caltech101/ft-s0 \
        --data ../shared/data/caltech101 --seed 0 --out benchmarks/results/beta-variants-caltech101-s0

From one FT model (``--ft``: a finetune run folder or a search's ``iter_000``; ``--seed`` must be the
seed it was made with, which fixes the split), each importance scores the filters with the train
loader shuffled by order 0 and by order 1:

- ``beta``: the paper's, one α epoch, then a β pass of its own (``--beta-from pass``);
- ``beta-alpha-epoch``: β summed over the α epoch's own batches (``--beta-from alpha-epoch``);
- ``taylor``: β at α = 1, one pass (the search's default importance).

Each score prunes a copy of the FT model by each of ``--steps`` of its MACs (the search's pruning
defaults) and the copy is evaluated on the validation split before any fine-tuning. Reported: the
seconds of each importance, val top-1 and loss of each pruned copy, how many removed channels two
scorings share (the same importance under two batch orders is the noise floor; the paper's β
against the one-pass β is the question), the Spearman correlation of the channel scores, and how
far the trained α moved from 1. Writes ``table.md`` and ``scores.pt`` to ``--out``; a second run
with the same ``--out`` reuses the scores.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from _common import markdown_table
from transtailor.data import build_data
from transtailor.data.sampling import reseed_loader
from transtailor.models.measure import layer_macs
from transtailor.models.serialize import load_bundle
from transtailor.pruning import find_gate_sites, prune_to_macs
from transtailor.pruning.criteria import ScoreContext, make_criterion
from transtailor.training import evaluate, seed_everything

VARIANTS = {"beta": ("beta", {"beta_from": "pass"}),
            "beta-alpha-epoch": ("beta", {"beta_from": "alpha-epoch"}),
            "taylor": ("taylor", {})}


def _flat(scores: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([scores[k].flatten().float() for k in sorted(scores)])


def _shared(a: set, b: set) -> float:
    return 100.0 * len(a & b) / max((len(a) + len(b)) / 2, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ft", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--steps", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--orders", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--max-layer-fraction", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu")
    ft = load_bundle(args.ft)
    seed_everything(args.seed)
    data = build_data(args.data, image_size=args.image_size, mean=ft.mean, std=ft.std, cache=True, seed=args.seed)
    model = ft.model
    sites = find_gate_sites(model, 64, exclude=(ft.head,))
    macs0, _ = layer_macs(model, args.image_size)

    saved_path = args.out / "scores.pt"
    saved = torch.load(saved_path) if saved_path.is_file() else {}
    for (name, (criterion, options)), order in itertools.product(VARIANTS.items(), args.orders):
        key = f"{name}/o{order}"
        if key in saved:
            continue
        crit = make_criterion(criterion, options)
        reseed_loader(data.train_loader, 7919 * (order + 1))
        t = time.perf_counter()
        scored = crit(ScoreContext(model, sites, data.train_loader, device, seed=args.seed))
        total = time.perf_counter() - t
        saved[key] = {"scores": {k: v.cpu() for k, v in scored.scores.items()}, "seconds": dict(scored.seconds),
                      "total": total, "alpha": scored.saved.get("alpha"), "flops_aware": crit.flops_aware}
        torch.save(saved, saved_path)
        print(key, {k: round(v, 1) for k, v in scored.seconds.items()}, flush=True)

    ft_val = evaluate(model, data.val_loader, device)
    keys = list(saved)
    removed: dict[tuple[str, float], set] = {}
    rows = []
    for key in keys:
        entry = saved[key]
        row = [key, " + ".join(f"{k} {v:.0f}" for k, v in entry["seconds"].items()) or f"{entry['total']:.0f}"]
        for step in args.steps:
            m = copy.deepcopy(model)
            record, _ = prune_to_macs(m, sites, entry["scores"], int(macs0 * (1 - step)), args.image_size, ft.head,
                                      flops_aware=entry["flops_aware"], max_fraction=args.max_layer_fraction)
            removed[key, step] = {(k, c) for k, v in record.removed_channels.items() for c in v}
            ev = evaluate(m, data.val_loader, device)
            row.append(f"{ev['top1']:.2f} / {ev['loss']:.3f}")
        rows.append(row)
        print(row, flush=True)

    pairs = []
    for a, b in itertools.combinations(keys, 2):
        same = a.split("/")[0] == b.split("/")[0]
        same_order = a.split("/")[1] == b.split("/")[1]
        if not (same or same_order):
            continue
        what = "same importance, other order (noise)" if same else "other importance, same order"
        rho = spearmanr(_flat(saved[a]["scores"]), _flat(saved[b]["scores"])).statistic
        pairs.append([f"{a} ~ {b}", what, f"{rho:.3f}"]
                     + [f"{_shared(removed[a, s], removed[b, s]):.0f}" for s in args.steps])

    alpha_rows = []
    for key in keys:
        alpha = saved[key]["alpha"]
        if alpha is None:
            continue
        a = _flat(alpha)
        dev = (a - 1).abs()
        alpha_rows.append([key, f"{dev.median():.4f}", f"{dev.quantile(0.99):.4f}", f"{a.min():.3f}", f"{a.max():.3f}",
                           f"{100 * (dev > 0.1).float().mean():.1f}"])

    steps = [f"{100 * s:.0f} % fewer MACs: val top-1 / loss" for s in args.steps]
    text = "\n".join([
        f"# β three ways, two batch orders ({args.out.name})", "",
        f"FT model `{args.ft}`: val top-1 {ft_val['top1']:.2f}, loss {ft_val['loss']:.3f}; "
        f"{len(sites)} gated layers, {sum(len(v) for v in saved[keys[0]]['scores'].values())} channels; "
        f"{args.image_size} px, {args.threads} threads. Pruned copies are not fine-tuned.", "",
        markdown_table(["importance / order", "seconds"] + steps, rows), "",
        "Removed channels two scorings share (% of the mean set size) and the Spearman correlation of all "
        "channel scores:", "",
        markdown_table(["pair", "what", "Spearman"] + [f"shared at {100 * s:.0f} %" for s in args.steps], pairs), "",
        "How far α moved from 1 (|α - 1| over all channels):", "",
        markdown_table(["α of", "median", "99th pct", "min α", "max α", "% with |α-1| > 0.1"], alpha_rows), "",
    ])
    (args.out / "table.md").write_text(text)
    (args.out / "seconds.json").write_text(json.dumps({k: {"seconds": v["seconds"], "total": v["total"]}
                                                       for k, v in saved.items()}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
