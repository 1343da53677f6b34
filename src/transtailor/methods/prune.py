"""Pruning baselines (L1, Taylor, random) to a FLOPs budget, on the same loop and FT start as the search.

They prune the FT model to ``--flops-reduction`` in ``--flops-step`` steps (default: one step),
fine-tuning after each with the same epochs and learning rates as TransTailor, so that a
comparison differs only in how filters are scored.
"""

from __future__ import annotations

import math

import torch.nn as nn

from ..config import PruneConfig
from ..pruning import GateSite
from ..pruning.criteria import l1_scores, per_layer, random_scores, taylor_scores
from .common import Setup
from .iterative import Plan, Scored, SearchResult, run_iterative


def criterion_scores(s: Setup, it: int, sites: list[GateSite]) -> Scored:
    import time

    cfg: PruneConfig = s.cfg  # type: ignore[assignment]
    t = time.perf_counter()
    if cfg.method == "l1":
        scores = l1_scores(s.bundle.model, sites)
    elif cfg.method == "taylor":
        scores = taylor_scores(s.bundle.model, sites, s.data.train_loader, s.device)
    else:
        scores = random_scores(s.bundle.model, sites, cfg.seed * 1000 + it)
    if cfg.scope == "layer":
        scores = per_layer(scores)
    return Scored(scores=scores, seconds={"seconds_score": time.perf_counter() - t})


def _plan(cfg: PruneConfig) -> Plan:
    step = cfg.flops_step or cfg.flops_reduction
    return Plan(method=cfg.method, scorer=criterion_scores, step=step, target=cfg.flops_reduction,
                max_iterations=math.ceil(cfg.flops_reduction / step - 1e-9))


def prune(cfg: PruneConfig, model: nn.Module | None = None) -> SearchResult:
    """Prune the FT model with ``cfg.method`` to ``cfg.flops_reduction``; return the final sub-model."""
    return run_iterative(cfg, f"prune-{cfg.method}", _plan, model)
