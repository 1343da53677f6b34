"""A method's end: score a model on validation and test (with each image's prediction), record what the
run ran on, save the model and write ``summary.json``."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..distributed import barrier, is_main
from ..models import save_model
from ..records import FinetuneSummary, RunFacts
from ..runs import MODEL_FILE, write_json
from ..training.loop import FitResult, predict
from ..training.predictions import Evaluated
from .measuring import measure, timing_setup
from .setup import Setup


def final_scores(s: Setup, model: nn.Module, phase: FitResult | None = None, *,
                 reuse_val: bool = True) -> tuple[dict[str, Any], Evaluated]:
    """Validation and test metrics of ``model`` and its predictions behind them.

    ``phase`` is the training phase that produced the model; every epoch's validation predictions are
    kept with the result. With ``reuse_val`` the model is that phase's kept epoch as it stands, so its
    validation predictions are reused, not computed again (not so once gates were folded into it or
    filters removed after training).
    """
    val = phase.val if phase is not None and reuse_val else None
    if val is None and s.data.val_loader is not None:
        val = predict(model, s.data.val_loader, s.device, "val")
    result = Evaluated(test=predict(model, s.data.test_loader, s.device, "test"), val=val,
                       val_epochs=phase.val_predictions if phase is not None else None,
                       kept_epoch=phase.best_epoch if phase is not None else None)
    scores: dict[str, Any] = {}
    if val is not None:
        scores.update({f"val_{k}": v for k, v in val.metrics().items()})
    scores.update({f"test_{k}": v for k, v in result.test.metrics().items()})
    return scores, result


def write_predictions(path: Path, evaluated: Evaluated) -> None:
    """``predictions.json``: per image, the label, predicted class, loss and top-5 hit on val and test,
    and on val for every epoch of the phase (see :mod:`transtailor.training.predictions`)."""
    if is_main():
        write_json(path, evaluated.to_json())


def run_facts(s: Setup) -> RunFacts:
    """What every summary records about the data and the machine."""
    return RunFacts(classes=s.data.num_classes, images=s.data.counts, skipped_files=len(s.data.skipped),
                    skipped_examples=s.data.skipped[:20], device=str(s.device), threads=torch.get_num_threads(),
                    torch=torch.__version__, machine=platform.machine())


def finish(s: Setup, model: nn.Module, method: str, fitted: FitResult, scores: dict[str, Any],
           compute: float | None = None) -> FinetuneSummary:
    """Measure, save the model into the run folder and write ``summary.json`` (with ``compute``, the training's
    FT-Full-epoch equivalents); return the summary."""
    cost = measure(model, s.image_size, setup=timing_setup(s.cfg, s.device) if s.cfg.latency else None,
                   rounds=s.cfg.latency_rounds)
    summary = FinetuneSummary(method=method, best_epoch=fitted.best_epoch, train_seconds=fitted.seconds,
                              **scores, **cost, facts=run_facts(s), compute_ft_full_epochs=compute,
                              wall_seconds=time.perf_counter() - s.started)
    meta = {"classes": s.data.classes, "image_size": s.image_size, "crop_pct": s.cfg.crop_pct,
            "macs": summary.macs, "params": summary.params}
    save_model(s.run.file(MODEL_FILE), s.bundle, meta)
    s.run.write_summary(summary.to_json())
    barrier()  # the run folder is complete before any rank goes on
    return summary
