"""``l1``: the L1 norm of each filter's weights (Li et al. 2016), ranked per layer."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn

from ..gates import GateSite
from .base import Criterion, ScoreContext, Scores, register


def l1_scores(model: nn.Module, sites: list[GateSite]) -> dict[str, torch.Tensor]:
    out = {}
    for s in sites:
        w = cast(torch.Tensor, model.get_submodule(s.conv).weight).detach()
        out[s.module] = w.abs().flatten(1).sum(1).float().cpu()
    return out


@register
class L1(Criterion[None]):
    name = "l1"
    summary = "weight norm of each filter (Li et al. 2016), ranked per layer"
    scope = "layer"

    def __call__(self, ctx: ScoreContext) -> Scores:
        return Scores(l1_scores(ctx.model, ctx.sites))
