"""``random``: uniform random scores, the floor every criterion must clear."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..gates import GateSite, site_channels
from .base import Criterion, ScoreContext, Scores, register


def random_scores(model: nn.Module, sites: list[GateSite], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s.module: torch.rand(site_channels(model, s), generator=gen) for s in sites}


@register
class Random(Criterion[None]):
    name = "random"
    summary = "uniform random scores (seeded by run seed and iteration): the floor"

    def __call__(self, ctx: ScoreContext) -> Scores:
        return Scores(random_scores(ctx.model, ctx.sites, ctx.seed))
