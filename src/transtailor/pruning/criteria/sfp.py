"""``sfp``: Soft Filter Pruning (He et al. 2018): the fine-tuning itself prunes.

After every epoch the filters with the lowest L2 norm that reach the step's FLOPs target are zeroed
but stay trainable (:mod:`transtailor.pruning.soft`); the epoch kept at the end has its zeroed
filters removed physically, and nothing else. Ranked per layer.
"""

from __future__ import annotations

from ..soft import l2_scores
from .base import Criterion, ScoreContext, Scores, register


@register
class SoftFilterPruning(Criterion[None]):
    name = "sfp"
    summary = "soft filter pruning: weakest L2 filters zeroed after every epoch, removed at the end"
    scope = "layer"
    soft = True

    def __call__(self, ctx: ScoreContext) -> Scores:
        return Scores(l2_scores(ctx.model, ctx.sites))
