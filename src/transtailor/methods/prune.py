"""``prune``: a pruning criterion to a FLOPs (or speed-up) budget, on the same loop and FT start as the search.

Any registered criterion (:mod:`transtailor.pruning.criteria`: l1, taylor, gbn, sfp, random, beta)
prunes the FT model to ``--flops-reduction`` in ``--flops-step`` steps (default: one step),
fine-tuning after each with the same epochs and learning rates as TransTailor, so that a
comparison differs only in how filters are scored. A criterion that prunes while it trains (SFP)
scores after every fine-tuning epoch instead (:mod:`.soft`).
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn as nn

from ..config import PruneConfig
from ..errors import ConfigError
from ..pruning.criteria import Criterion, make_criterion
from .budget import step_share
from .iterative import Plan, SearchResult, run_iterative
from .stopping import Stops


def check_criterion(cfg: PruneConfig) -> Criterion:
    """The configured criterion, refusing combinations it cannot do (before anything is written)."""
    criterion = make_criterion(cfg.method, cfg.method_options, strict=True)
    if criterion.soft and cfg.distill_choice() != "none" and cfg.distill_in == "all":
        raise ConfigError(f"--method {cfg.method} prunes while it trains and has no teacher step: drop --distill, "
                          "or use --distill-in recovery (the teacher then trains the recovery alone)")
    if criterion.soft and cfg.cost == "latency":
        raise ConfigError(f"--method {cfg.method} selects filters by MACs while it trains: use --cost macs with it")
    return criterion


def _plan(cfg: PruneConfig) -> Plan:
    criterion = check_criterion(cfg)
    common: dict[str, Any] = dict(method=cfg.method, criterion=criterion, scope=cfg.scope or criterion.scope,
                  flops_aware=criterion.flops_aware if cfg.flops_aware is None else cfg.flops_aware)
    if cfg.cost == "latency":  # the budget is a measured speed-up; steps may fall short and be made up
        assert cfg.target_speedup is not None
        share = 1.0 - 1.0 / cfg.target_speedup
        step = step_share(cfg, None) or share
        stops = Stops(target_speedup=cfg.target_speedup, max_iterations=math.ceil(share / step - 1e-9) + 2)
        return Plan(step=step, stops=stops, **common)
    step = cfg.flops_step or cfg.flops_reduction
    stops = Stops(target_flops_reduction=cfg.flops_reduction, target_speedup=cfg.target_speedup,
                  max_iterations=math.ceil(cfg.flops_reduction / step - 1e-9))
    return Plan(step=step, stops=stops, **common)


def prune(cfg: PruneConfig, model: nn.Module | None = None) -> SearchResult:
    """Prune the FT model with ``cfg.method`` to ``cfg.flops_reduction``; return the final sub-model."""
    return run_iterative(cfg, f"prune-{cfg.method}", _plan, model)
