"""The TransTailor sub-model search (Algorithm 1 of the paper), on the shared iterative loop.

Per iteration: score every filter with ``--importance``; remove the lowest-scored filters; fine-tune
(with the score attached as ``--importance-ft`` says, Eq. 6) and fold it; stop by the stop rule
(:mod:`transtailor.methods.stopping`). The paper's score is β = |∂L/∂α · α| over the train split
(Eq. 5):

- ``--importance beta`` (the paper's): α is first trained with the weights frozen (Eq. 3);
- ``--importance taylor`` (default): β at α = 1, the first-order Taylor score of each filter's
  output. Measured level with ``beta`` on caltech101 and cub10 at 10–50 % fewer FLOPs, at under
  half the cost (README, "Stop rule and kept epoch").

Any other registered criterion may be named too (:mod:`transtailor.pruning.criteria`), except one
that prunes while it trains.
"""

from __future__ import annotations

import torch.nn as nn

from ..config import SearchConfig
from ..errors import ConfigError
from ..pruning.criteria import criterion_names, make_criterion
from .budget import step_share
from .stopping import StopRule, Stops
from .iterative import Plan, SearchResult, run_iterative


def _plan(cfg: SearchConfig) -> Plan:
    criterion = make_criterion(cfg.importance, cfg.method_options, what="--importance", strict=True)
    if criterion.soft:
        raise ConfigError(f"--importance {cfg.importance} prunes while it trains; the search scores once per "
                          f"step: use one of {', '.join(criterion_names(soft=False))}")
    step = _equal_steps(cfg) if cfg.steps is not None else step_share(cfg, cfg.flops_step)
    assert step is not None  # --flops-step is required (validated), and --latency-step falls back to it
    stops = Stops(StopRule(cfg.accuracy_stop(), cfg.tau, cfg.loss_tolerance),
                  target_flops_reduction=cfg.target_flops_reduction, target_speedup=cfg.target_speedup,
                  max_iterations=cfg.max_iterations)
    return Plan(method="transtailor", criterion=criterion, scope=criterion.scope, flops_aware=criterion.flops_aware,
                step=step, importance_ft=cfg.importance_ft, stops=stops)


def _equal_steps(cfg: SearchConfig) -> float:
    """``--steps N``: the share of the original removed per step to reach the target in N steps (with
    ``--cost latency`` and ``--target-speedup``, in measured time; otherwise in MACs)."""
    assert cfg.steps is not None
    if cfg.cost == "latency" and cfg.target_speedup is not None:
        return (1.0 - 1.0 / cfg.target_speedup) / cfg.steps
    assert cfg.target_flops_reduction is not None  # validated
    return cfg.target_flops_reduction / cfg.steps


def search(cfg: SearchConfig, model: nn.Module | None = None) -> SearchResult:
    """Run (or with ``cfg.resume``, continue) the TransTailor search; return the best sub-model."""
    return run_iterative(cfg, "search", _plan, model)
