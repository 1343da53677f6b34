"""Does averaging each validation image with its mirror image steady the stop rule? Replayed offline.

    python benchmarks/flip_val.py benchmarks/results/stop-rules-cub10 --kinds tt-last taylor-last

For every uncut trajectory of ``benchmarks/stop_rules.sh`` under ROOT (``KIND-sSEED`` folders), each
iteration's saved model is evaluated on the run's validation split twice: as the search does, and
with test-time flips (the mean of the softmax of the image and of its horizontal mirror). The
default stop rule (``loss``, 5 %) and the paper's (top-1, τ 0.3) are then replayed on either, and the returned
iteration's test top-1 is set against the best pruned iteration of the run. The plain evaluation
must reproduce the saved validation loss (checked). Writes ``flip_val.md`` beside the runs.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from _common import mean_std
from stop_rules import RULES, _runs, _trajectory, replay
from transtailor.data import build_data
from transtailor.models.serialize import load_bundle

RULES_TRIED = ("loss 5 % (default)", "paper (tau 0.3)")


@torch.no_grad()
def val_losses(model: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: loss and correctness without and with flips."""
    model.eval()
    out = [], [], [], []
    for x, y in loader:
        p = F.softmax(model(x).float(), 1)
        q = (p + F.softmax(model(x.flip(-1)).float(), 1)) / 2
        for i, probs in enumerate((p, q)):
            out[2 * i].append(-probs.gather(1, y[:, None]).squeeze(1).clamp_min(1e-12).log())
            out[2 * i + 1].append(probs.argmax(1) == y)
    return tuple(torch.cat(o) for o in out)  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--kinds", nargs="+", default=["tt-last", "taylor-last"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    runs = _runs(args.root)
    rows, detail = [], []
    for kind in args.kinds:
        got: dict[tuple[str, str], list] = {(r, v): [] for r in RULES_TRIED for v in ("plain", "flips")}
        best, check = [], []
        for seed, run in sorted(runs[kind].items()):
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            first = load_bundle(run / "iter_000")
            data = build_data(cfg["data"], image_size=cfg["image_size"], mean=first.mean, std=first.std,
                              crop_pct=cfg["crop_pct"], val_fraction=cfg["val_fraction"],
                              test_fraction=cfg["test_fraction"], seed=cfg["seed"], cache=True, workers=0,
                              data_root=cfg.get("data_root"), caltech_split=cfg.get("caltech_split", "random"))
            its = _trajectory(run)
            flipped = copy.deepcopy(its)
            for rec, frec in zip(its, flipped):
                model = load_bundle(run / f"iter_{rec['iteration']:03d}").model
                loss, correct, floss, fcorrect = val_losses(model, data.val_loader)
                check.append(abs(loss.mean().item() - rec["val_loss"]))
                frec["val_loss"], frec["val_top1"] = floss.mean().item(), 100 * fcorrect.float().mean().item()
            best.append(max(r["test_top1"] for r in its[1:]))
            for rule, name in got:
                traj = its if name == "plain" else flipped
                it, _ = replay(traj, RULES[rule])
                got[rule, name].append(traj[it])
            detail.append(f"- {kind} s{seed} (val {data.counts['val']} images), val loss plain / flips per step: " + ", ".join(
                f"{a['val_loss']:.3f} / {b['val_loss']:.3f}" for a, b in zip(its, flipped)))
            print(detail[-1], flush=True)
        for (rule, name), returned in got.items():
            rows.append(f"| {kind} | {rule} | {name} | {', '.join(str(r['iteration']) for r in returned)} | "
                        f"{mean_std([100 * r['flops_reduction'] for r in returned])} | "
                        f"{mean_std([r['test_top1'] for r in returned])} | "
                        f"{mean_std([b - r['test_top1'] for b, r in zip(best, returned)])} |")
        detail.append(f"- {kind}: plain evaluation against the saved val loss, largest difference {max(check):.2e}")
    text = "\n".join([f"# Test-time flips on the validation split ({args.root.name})", "",
                      "| trajectory | stop rule | val scored | returned iteration per seed | FLOPs fewer % | test top-1 % | "
                      "gap to best pruned |", "|---|---|---|---|---|---|---|", *rows, "", *detail, ""])
    print(text)
    (args.root / "flip_val.md").write_text(text)


if __name__ == "__main__":
    main()
