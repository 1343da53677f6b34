"""Ablation of TransTailor's importance: β accumulation and importance-aware fine-tuning formulations.

    python benchmarks/importance.py --data caltech101 --image-size 112 --epochs 4 --seed 0

From one FT model (new head trained, the search's starting point; reused from
benchmarks/results/finetune/ when that run exists), α is trained once and β is accumulated three
ways. Each β prunes a copy of the model by --step of its MACs and is scored before any
fine-tuning. The per-batch-β pruned model is then fine-tuned with every --importance-ft
formulation. Reports val/test top-1 (selection by val), seconds per fine-tuning epoch (gated vs
plain: the gates' overhead) and the cost of α training + one β pass in fine-tuning epochs.
"""

from __future__ import annotations

import copy
import json
import logging
import time

import torch

import transtailor as tt
from _common import RESULTS, benchmark_parser, markdown_table, shared_dataset
from transtailor.data import build_data
from transtailor.data.sampling import reseed_loader
from transtailor.models.measure import layer_macs
from transtailor.models.serialize import load_bundle
from transtailor.pruning import BETA_MODES, accumulate_beta, find_gate_sites, prune_to_macs, train_alpha
from transtailor.pruning.importance_ft import IMPORTANCE_FT_MODES, attach_importance
from transtailor.training import evaluate, fit, make_sgd, param_groups, seed_everything


def scores(model, data, device):
    return (evaluate(model, data.val_loader, device)["top1"], evaluate(model, data.test_loader, device)["top1"])


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--data", default="caltech101")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--lr-head", type=float, default=0.05)
    ap.add_argument("--lr-backbone", type=float, default=0.005)
    ap.add_argument("--modes", nargs="+", default=list(IMPORTANCE_FT_MODES))
    ap.add_argument("--tag", default="", help="suffix of the result files")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device("cpu")
    root = shared_dataset(args.data)
    ft_dir = RESULTS / "finetune" / f"{args.data}-head-s{args.seed}"
    if not (ft_dir / "summary.json").is_file():
        cfg = tt.resolve(tt.FinetuneConfig, flags=dict(model=args.model, data=str(root), image_size=args.image_size,
                                                      epochs=args.epochs, mode="head", seed=args.seed, cache=True,
                                                      out=str(ft_dir)))
        tt.finetune(cfg)
    ft = load_bundle(ft_dir)
    seed_everything(args.seed)
    data = build_data(str(root), image_size=args.image_size, mean=ft.mean, std=ft.std, cache=True, seed=args.seed)
    base = ft.model
    ft_val, ft_test = scores(base, data, device)
    macs0, _ = layer_macs(base, args.image_size)
    sites = find_gate_sites(base, 64, exclude=(ft.head,))
    t = time.perf_counter()
    alpha = train_alpha(base, sites, data.train_loader, device, epochs=1, lr=0.01)
    t_alpha = time.perf_counter() - t
    t = time.perf_counter()
    betas = accumulate_beta(base, alpha, data.train_loader, device, BETA_MODES)  # one pass, same batches
    t_beta = time.perf_counter() - t
    beta_rows, pruned = [], {}
    for mode, beta in betas.items():
        m = copy.deepcopy(base)
        _, kept = prune_to_macs(m, sites, beta, int(macs0 * (1 - args.step)), args.image_size, ft.head)
        pruned[mode] = (m, kept)
        v, te = scores(m, data, device)
        beta_rows.append([mode, f"{100 * (1 - layer_macs(m, args.image_size)[0] / macs0):.1f}", f"{v:.2f}", f"{te:.2f}"])
        print(beta_rows[-1], flush=True)
    # how much the summed gradient cancels, relative to the per-batch magnitude
    cancel = sum(betas["literal"][k].sum().item() for k in betas["literal"]) / sum(
        betas["per-batch"][k].sum().item() for k in betas["per-batch"])

    ft_rows, epoch_seconds = [], {}
    for mode in args.modes:
        m, kept = copy.deepcopy(pruned["per-batch"][0]), pruned["per-batch"][1]
        seed_everything(args.seed)
        reseed_loader(data.train_loader, args.seed)
        importance = attach_importance(m, sites, kept, mode)
        start = scores(m, data, device)
        opt = make_sgd(param_groups(m, ft.head, args.lr_head, args.lr_backbone))
        res = fit(m, data.train_loader, data.val_loader, opt, device, epochs=args.epochs)
        importance.finish(m)
        v, te = scores(m, data, device)
        epoch_seconds[mode] = sum(r["train_seconds"] for r in res.history) / len(res.history)
        ft_rows.append([mode, f"{start[0]:.2f}", f"{v:.2f}", f"{te:.2f}", str(res.best_epoch),
                        f"{epoch_seconds[mode]:.0f}"])
        print(ft_rows[-1], flush=True)
    plain = epoch_seconds.get("none")
    one_epoch = plain or next(iter(epoch_seconds.values()))
    lines = [
        f"{args.model}, {args.data}, {args.image_size} px, seed {args.seed}, --cache, {torch.get_num_threads()} threads; "
        f"FT model: val {ft_val:.2f} / test {ft_test:.2f}; prune step {args.step:.0%} of {macs0 / 1e6:.1f} MMACs",
        "",
        "β accumulation, scored right after the prune (no fine-tuning):",
        "",
        markdown_table(["beta", "FLOPs red. %", "val top-1", "test top-1"], beta_rows),
        "",
        f"|Σ ∂L/∂α·α| / Σ|∂L_b/∂α·α| summed over filters: {cancel:.3f}",
        "",
        f"Importance-aware fine-tuning of the per-batch-β model, {args.epochs} epochs, "
        f"lr {args.lr_head}/{args.lr_backbone}:",
        "",
        markdown_table(["importance-ft", "val before FT", "val top-1", "test top-1", "best epoch", "s / epoch"],
                       ft_rows),
        "",
        f"Cost of importance: alpha training {t_alpha:.0f} s + one beta pass (all three modes) {t_beta:.0f} s = "
        f"{(t_alpha + t_beta) / one_epoch:.2f} fine-tuning epochs of the pruned model ({one_epoch:.0f} s).",
    ]
    if plain:
        for mode, sec in epoch_seconds.items():
            if mode != "none":
                lines.append(f"Gate overhead ({mode}): {sec / plain:.3f}x the plain fine-tuning epoch.")
    out = RESULTS / f"importance-{args.data}-s{args.seed}{args.tag}.md"
    out.write_text("\n".join(lines) + "\n")
    (RESULTS / f"importance-{args.data}-s{args.seed}{args.tag}.json").write_text(json.dumps(
        {"beta": beta_rows, "ft": ft_rows, "alpha_s": t_alpha, "beta_s": t_beta, "epoch_s": epoch_seconds,
         "cancel": cancel}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
