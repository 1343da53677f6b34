"""``gbn``: Gate Decorator's tick (You et al. 2019).

A gate after every BatchNorm trains alone for one epoch (``--gate-lr``, optional ``--gate-l1``
sparsity) while each batch's |∂L/∂g · g| is summed; the trained gates are folded into the
BatchNorms (they stay in the model, as BatchNorm scales) and filters are ranked by that sum per
FLOP saved. The *tock* is the loop's fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ...config import option
from ...errors import ConfigError
from ..gates import Gates, GateSite, fold_gates
from ..importance import BetaSums, train_alpha
from .base import Criterion, ScoreContext, Scores, register


def train_alpha_with_taylor(model: nn.Module, sites: list[GateSite], loader: DataLoader, device: torch.device, *,
                            lr: float = 0.01, l1: float = 0.0) -> tuple[Gates, dict[str, torch.Tensor]]:
    """One epoch of gate training from 1 (the tick), with Σ_batches |∂L/∂g · g| per site, each batch's
    term at the gates of that step (Gate Decorator's score)."""
    sums = BetaSums(("per-batch",))
    gates = train_alpha(model, sites, loader, device, lr=lr, l1=l1, on_batch=lambda g, _: sums.add_gates(g))
    return gates, sums.result()["per-batch"]


@dataclass
class GbnOptions:
    gate_lr: float = option(0.01, "gbn: learning rate of the gates in each tick (one epoch, weights frozen)")
    gate_l1: float = option(0.0, "gbn: L1 sparsity strength on the gates during the tick")

    def __post_init__(self) -> None:
        if self.gate_lr < 0 or self.gate_l1 < 0:
            raise ConfigError(f"--gate-lr and --gate-l1 must not be negative, got {self.gate_lr}, {self.gate_l1}")


@register
class GateDecorator(Criterion[GbnOptions]):
    name = "gbn"
    summary = "Gate Decorator: gates trained for an epoch, Taylor score of the gates, FLOPs-aware ranking"
    Options = GbnOptions
    needs_data = True
    flops_aware = True

    def __call__(self, ctx: ScoreContext) -> Scores:
        gates, scores = train_alpha_with_taylor(ctx.model, ctx.sites, ctx.loader, ctx.device,
                                                lr=self.options.gate_lr, l1=self.options.gate_l1)
        fold_gates(ctx.model, gates)  # the trained gates stay in the model, as BatchNorm scales
        return Scores({k: v.cpu() for k, v in scores.items()})
