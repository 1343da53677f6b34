"""FT (new head only, everything else frozen) and FT-Full (every layer), the paper's baselines.

FT is also TransTailor's starting point.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from ..config import FinetuneConfig
from ..models.zoo import ModelBundle
from ..pruning import find_gate_sites
from ..records import FinetuneSummary
from ..runs import PREDICTIONS_FILE, releases_folders
from ..training import FitResult, fit, freeze_all_but, make_sgd, param_groups
from ..training.compute import epochs_equivalent
from ..training.loop import Criterion
from ..training.regularizers import Regularizer, channel_attention, make_regularizer, stage_outputs
from .results import final_scores, finish, write_predictions
from .setup import Setup, prepare

log = logging.getLogger("transtailor")


@dataclass
class FinetuneResult:
    bundle: ModelBundle
    summary: FinetuneSummary
    run_dir: Path

    @property
    def model(self) -> nn.Module:
        return self.bundle.model


def finetune_phase(s: Setup, mode: str, epochs: int, phase: str, extra: dict[str, Any] | None = None,
                   after_train: Callable[[int], None] | None = None,
                   criterion: Criterion | None = None, warmup_epochs: float = 0.0) -> FitResult:
    """Train the setup's model in place (``head`` or ``full``); log every epoch to the run folder.

    ``full`` training uses the configured transfer regulariser (``--regularizer``), anchored at the
    weights the phase starts from; without a ``criterion`` the loss is cross-entropy with
    ``--label-smoothing`` (a :class:`~transtailor.training.distill.Distiller` is built with it).
    """
    model = s.bundle.model
    if mode == "head":
        freeze_all_but(model, [s.bundle.head])
    else:
        for p in model.parameters():
            p.requires_grad = True
    reg = regularizer_for(s) if mode == "full" else None
    opt = make_sgd(param_groups(model, s.bundle.head, s.cfg.lr_head, s.cfg.lr_backbone),
                   s.cfg.momentum, 0.0 if reg is not None else s.cfg.weight_decay)

    def on_epoch(rec: dict[str, Any]) -> None:
        s.run.log_metrics({**(extra or {}), **rec})
        log.info("%s epoch %d: train loss %.3f top-1 %.1f%% | val top-1 %s (%.0fs)", phase, rec["epoch"],
                 rec["train_loss"], rec["train_top1"],
                 f"{rec['val_top1']:.1f}%" if "val_top1" in rec else "-", rec["seconds"])

    try:
        res = fit(model, s.data.train_loader, s.data.val_loader, opt, s.device, epochs=epochs,
                  schedule=s.cfg.schedule, penalty=reg, phase=phase, on_epoch=on_epoch, after_train=after_train,
                  criterion=criterion, epoch_choice=s.cfg.epoch_choice, warmup_epochs=warmup_epochs,
                  label_smoothing=s.cfg.label_smoothing)
    finally:
        if reg is not None:
            reg.remove()
    for p in model.parameters():
        p.requires_grad = True
    return res


def regularizer_for(s: Setup) -> Regularizer | None:
    """The configured transfer regulariser, anchored at the model's current weights."""
    cfg, model = s.cfg, s.bundle.model
    if cfg.regularizer != "delta":
        return make_regularizer(cfg.regularizer, model, s.bundle.head, alpha=cfg.reg_alpha, beta=cfg.reg_beta)
    sites = find_gate_sites(model, min(s.image_size, 64), exclude=(s.bundle.head,))
    normed = [site.module for site in sites if site.kind != "conv"]  # not squeeze-excite's 1x1 maps
    layers = stage_outputs(model, normed or [site.module for site in sites], s.image_size)
    attention = channel_attention(model, layers, s.data.train_loader, s.device, cfg.delta_images)
    log.info("delta: channel attention over %d layers (%d channels) from %d images", len(layers),
             sum(len(a) for a in attention.values()), cfg.delta_images)
    return make_regularizer("delta", model, s.bundle.head, alpha=cfg.reg_alpha, beta=cfg.reg_beta,
                            layers=layers, attention=attention)


@releases_folders
def finetune(cfg: FinetuneConfig, model: nn.Module | None = None) -> FinetuneResult:
    """Run FT (``cfg.mode='head'``) or FT-Full (``'full'``) and write the run folder."""
    s = prepare(cfg, f"finetune-{cfg.mode}", model)
    s.run.reset_metrics()
    phase = "ft" if cfg.mode == "head" else "ft_full"
    compute = epochs_equivalent(cfg.epochs, 1, 1, mode=cfg.mode)
    if cfg.mode == "full" and cfg.regularizer == "delta":
        # DELTA measures its channel attention with a classifier trained on the frozen source features
        finetune_phase(dataclasses.replace(s, cfg=dataclasses.replace(s.cfg, regularizer="none")), "head", 1,
                       "delta_head")
        compute += epochs_equivalent(1, 1, 1, mode="head")
    fitted = finetune_phase(s, cfg.mode, cfg.epochs, phase)
    scores, evaluated = final_scores(s, s.bundle.model, fitted)
    s.run.log_metrics({"phase": f"{phase}_final", **scores})
    write_predictions(s.run.file(PREDICTIONS_FILE), evaluated)
    summary = finish(s, s.bundle.model, phase, fitted, scores, compute)
    log.info("%s done: val top-1 %s, test top-1 %.2f%%, %.1f M MACs -> %s", phase,
             f"{summary.val_top1:.2f}%" if summary.val_top1 is not None else "-", summary.test_top1,
             summary.macs / 1e6, s.run.path)
    return FinetuneResult(s.bundle, summary, s.run.path)
