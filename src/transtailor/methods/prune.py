"""Pruning baselines (L1, Taylor, GBN, random) to a FLOPs budget, on the same loop and FT start as the search.

They prune the FT model to ``--flops-reduction`` in ``--flops-step`` steps (default: one step),
fine-tuning after each with the same epochs and learning rates as TransTailor, so that a
comparison differs only in how filters are scored.

``gbn`` is Gate Decorator's tick-tock: each *tick* attaches a gate after every BatchNorm, trains
the gates alone for one epoch (``--gate-lr``, optional ``--gate-l1`` sparsity) while accumulating
each batch's |∂L/∂g · g|, folds the trained gates into the BatchNorms and prunes by that score per
FLOP saved; each *tock* is the shared fine-tuning. ``--flops-step`` sets how much each tick removes.

``sfp`` is Soft Filter Pruning: the fine-tuning itself prunes. After every epoch the filters with
the lowest L2 norm that reach the step's FLOPs target are zeroed but stay trainable; the epoch
kept at the end (best validation) has its zeroed filters removed physically, and nothing else.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn

from ..config import PruneConfig
from ..pruning import GateSite
from ..pruning.criteria import l1_scores, per_layer, random_scores, taylor_scores
from ..pruning.gates import fold_gates
from ..pruning.pruner import PruneRecord, remove_channels
from ..pruning.soft import l2_scores, soft_select, zero_channels
from ..training import FitResult
from .budget import resolve_round_to, step_share
from .finetune import finetune_phase
from ..pruning.importance import train_alpha
from .common import Setup
from .iterative import Plan, Scored, SearchResult, run_iterative


def criterion_scores(s: Setup, it: int, sites: list[GateSite]) -> Scored:
    cfg: PruneConfig = s.cfg  # type: ignore[assignment]
    t = time.perf_counter()
    if cfg.method == "l1":
        scores = l1_scores(s.bundle.model, sites)
    elif cfg.method == "taylor":
        scores = taylor_scores(s.bundle.model, sites, s.data.train_loader, s.device, cfg.taylor_on)
    elif cfg.method == "gbn":
        scores = {}
        gates = train_alpha(s.bundle.model, sites, s.data.train_loader, s.device, lr=cfg.gate_lr, l1=cfg.gate_l1,
                            taylor=scores)
        fold_gates(s.bundle.model, gates)  # the trained gates stay in the model, as BatchNorm scales
        scores = {k: v.cpu() for k, v in scores.items()}
    else:
        scores = random_scores(s.bundle.model, sites, cfg.seed * 1000 + it)
    return Scored(scores=_scoped(cfg, scores), seconds={"seconds_score": time.perf_counter() - t})


def _scoped(cfg: PruneConfig, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The scores as ``--scope`` ranks them: per layer (divided by each layer's mean) or as they are."""
    return per_layer(scores) if cfg.ranking_scope() == "layer" else scores


def sfp_trainer(s: Setup, it: int, sites: list[GateSite], target: int, epochs: int) -> tuple[PruneRecord, FitResult]:
    """Fine-tune with soft pruning after every epoch, then remove the kept epoch's zeroed filters."""
    cfg, model, head = s.cfg, s.bundle.model, s.bundle.head
    selections: dict[int, dict] = {}
    widths = resolve_round_to(cfg, s.device)

    def soft_prune(epoch: int) -> None:
        selections[epoch] = soft_select(model, sites, target, cfg.image_size, head, cfg.min_channels,
                                        cfg.max_layer_fraction, scores=_scoped(cfg, l2_scores(model, sites)),
                                        round_to=widths)
        zero_channels(model, sites, selections[epoch])

    fitted = finetune_phase(s, "full", epochs, f"finetune{it}", {"iteration": it}, after_train=soft_prune)
    if fitted.best_epoch not in selections:  # no training epoch: a hard prune of the weakest filters
        soft_prune(fitted.best_epoch)
    record = remove_channels(model, sites, selections[fitted.best_epoch], cfg.image_size, head)
    return record, fitted


def _plan(cfg: PruneConfig) -> Plan:
    flops_aware = cfg.method == "gbn" if cfg.flops_aware is None else cfg.flops_aware
    if cfg.cost == "latency":  # the budget is a measured speed-up; steps may fall short and be made up
        assert cfg.target_speedup is not None
        share = 1.0 - 1.0 / cfg.target_speedup
        step = step_share(cfg, None) or share
        return Plan(method=cfg.method, scorer=criterion_scores, step=step, target=None,
                    max_iterations=math.ceil(share / step - 1e-9) + 2, flops_aware=flops_aware,
                    target_speedup=cfg.target_speedup)
    step = cfg.flops_step or cfg.flops_reduction
    return Plan(method=cfg.method, scorer=criterion_scores, step=step, target=cfg.flops_reduction,
                max_iterations=math.ceil(cfg.flops_reduction / step - 1e-9), flops_aware=flops_aware,
                trainer=sfp_trainer if cfg.method == "sfp" else None, target_speedup=cfg.target_speedup)


def prune(cfg: PruneConfig, model: nn.Module | None = None) -> SearchResult:
    """Prune the FT model with ``cfg.method`` to ``cfg.flops_reduction``; return the final sub-model."""
    return run_iterative(cfg, f"prune-{cfg.method}", _plan, model)
