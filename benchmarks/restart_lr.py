"""How much a fresh learning-rate schedule alone costs a model that has already converged: an FT-Full run's
model trained EPOCHS more epochs, unpruned, on the schedule a pruning step's fine-tuning uses (cosine from
the given rates, no warm-up; --warmup 1 for the recovery's), into a run folder of its own (``refit.json``,
``predictions.json``). Against the loaded model's own scores this separates a step's loss into the part the
learning rate's restart makes and the part the pruning makes. With ``--teacher`` the loaded model also
teaches itself, frozen (weight 0.5, temperature 4), as FT-Full teaches a recovery: ``--epochs 24 --warmup 1
--teacher`` is the recovery's training without the pruning, the control that tells what a recovered
sub-model owes to its longer training rather than to being pruned.

    python benchmarks/restart_lr.py benchmarks/results/recovery-caltech101/caltech-ft-full-24ep-s0 \\
        benchmarks/results/recovery-caltech101/refit-ftfull24-4ep-lr0.005-s0 --epochs 4 --lr-backbone 0.005 --lr-head 0.05
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import yaml

from transtailor.config import FinetuneConfig, from_dict
from transtailor.methods.finetune import finetune_phase
from transtailor.methods.results import final_scores, write_predictions
from transtailor.methods.setup import load_ft_model, prepare
from transtailor.training.distill import Distiller

SHOWN = ("val_top1", "val_loss", "test_top1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ft_full", help="a 'finetune --mode full' run folder")
    ap.add_argument("out", help="the run folder to write")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr-backbone", type=float, default=0.005)
    ap.add_argument("--lr-head", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.0, help="epochs of linear warm-up")
    ap.add_argument("--teacher", action="store_true", help="the loaded model teaches (weight 0.5, T 4)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    run = yaml.safe_load((Path(args.ft_full) / "config.yaml").read_text())
    run.pop("command", None)
    cfg = dataclasses.replace(from_dict(FinetuneConfig, run), epochs=args.epochs, lr_backbone=args.lr_backbone,
                              lr_head=args.lr_head, threads=args.threads, workers=0, latency=False, out=args.out)
    s = prepare(cfg, "finetune-full")
    load_ft_model(s.bundle, s.data.classes, args.ft_full, cfg.model)
    before, _ = final_scores(s, s.bundle.model)
    teacher = Distiller(copy.deepcopy(s.bundle.model)) if args.teacher else None
    fitted = finetune_phase(s, "full", args.epochs, "refit", warmup_epochs=args.warmup, criterion=teacher)
    after, evaluated = final_scores(s, s.bundle.model, fitted)
    write_predictions(s.run.file("predictions.json"), evaluated)
    (Path(args.out) / "refit.json").write_text(json.dumps({"before": before, "after": after, "args": vars(args)}, default=str, indent=1))
    for name, scores in (("loaded", before), (f"after {args.epochs} epochs", after)):
        print(f"{name}: " + ", ".join(f"{k} {scores[k]:.4g}" for k in SHOWN if scores.get(k) is not None))


if __name__ == "__main__":
    main()
