"""How the global ranking spends a pruning step: accuracy right after pruning, before any fine-tuning.

    python benchmarks/ranking.py benchmarks/results/search/caltech101-s0 --iteration 2

Takes the sub-model a search started iteration N from (iter_{N-1}/model.pt) and the β it computed
there (iter_N/importance.pt), prunes it to iteration N's MACs target with each ranking variant and
reports validation top-1 and the most-pruned layers. Variants: ``global`` (the search's ranking),
``flops-aware`` (β per MAC saved), ``layer`` (β divided by its layer's mean), ``cap50``/``cap30`` (global,
no layer loses more than half / 30 % of its filters in one step) and their combination. Appends to
benchmarks/results/ranking-<run>-it<N>.md.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

import transtailor as tt
from _common import RESULTS, markdown_table
from transtailor.config import from_dict, load_yaml
from transtailor.methods.budget import macs_target
from transtailor.models.measure import layer_macs
from transtailor.pruning import find_gate_sites, prune_to_macs
from transtailor.pruning.criteria import per_layer
from transtailor.training import evaluate

VARIANTS = {"global": {}, "flops-aware": {"flops_aware": True}, "layer": {}, "cap50": {"max_fraction": 0.5},
            "cap30": {"max_fraction": 0.3}, "cap50+flops-aware": {"max_fraction": 0.5, "flops_aware": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--iteration", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    saved = {k: v for k, v in load_yaml(args.run / "config.yaml").items() if k != "command"}
    cfg = from_dict(tt.SearchConfig, {**saved, "out": None, "resume": None})
    bundle = tt.load_bundle(args.run / f"iter_{args.iteration - 1:03d}" / "model.pt")
    beta = torch.load(args.run / f"iter_{args.iteration:03d}" / "importance.pt", weights_only=True)["scores"]
    state = json.loads((args.run / "state.json").read_text())
    macs_now = layer_macs(bundle.model, cfg.image_size)[0]
    target = macs_target(macs_now, state["macs_original"], cfg.flops_step, cfg.target_flops_reduction)
    data = tt.build_data(cfg.data, image_size=cfg.image_size, mean=bundle.mean, std=bundle.std,
                         batch_size=64, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                         seed=cfg.seed, workers=2)
    dev = torch.device("cpu")
    rows = [["(before pruning)", f"{evaluate(bundle.model, data.val_loader, dev)['top1']:.2f}",
             f"{macs_now / 1e6:.1f}", ""]]
    for name, kw in ((n, VARIANTS[n]) for n in args.variants):
        model = copy.deepcopy(bundle.model)
        sites = find_gate_sites(model, 64, exclude=(bundle.head,))
        scores = per_layer(beta) if name == "layer" else beta
        record, _ = prune_to_macs(model, sites, scores, target, cfg.image_size, bundle.head, **kw)
        top = sorted(((record.removed[k] / (record.removed[k] + record.remaining[k]), k) for k in record.removed
                      if record.removed[k]), reverse=True)[:3]
        rows.append([name, f"{evaluate(model, data.val_loader, dev)['top1']:.2f}", f"{record.macs_after / 1e6:.1f}",
                     ", ".join(f"{k} -{100 * f:.0f}%" for f, k in top)])
        print(rows[-1], flush=True)
    head = (f"{args.run.name}, iteration {args.iteration}: prune-only validation top-1 (no fine-tuning); "
            f"command: python benchmarks/ranking.py {args.run} --iteration {args.iteration}\n\n")
    table = markdown_table(["ranking", "val top-1 %", "MMACs", "most-pruned layers"], rows)
    out = RESULTS / f"ranking-{args.run.name}-it{args.iteration}.md"
    out.write_text((out.read_text() + "\n" if out.is_file() else "") + head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
