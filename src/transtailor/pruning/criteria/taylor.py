"""``taylor``: first-order Taylor importance (Molchanov et al. 2017, 2019).

- ``--taylor-on output`` (default): of each filter's output, Σ_batches |∂L/∂g · g| at g = 1, which is
  TransTailor's β without training α.
- ``--taylor-on weight``: of the filter's parameters (Molchanov et al. 2019, Eq. 4):
  Σ_batches (Σ_{w ∈ filter} ∂L/∂w · w)² over the conv's filter and, where one follows, its BatchNorm
  scale and shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ...config import option
from ...distributed import broadcast_tensors
from ..gates import Gates, GateSite
from ..importance import batch_gradients, compute_beta
from .base import Criterion, ScoreContext, Scores, register

TAYLOR_ON = ("output", "weight")


def taylor_scores(model: nn.Module, sites: list[GateSite], loader: DataLoader,
                  device: torch.device, on: str = "output") -> dict[str, torch.Tensor]:
    if on == "weight":
        return taylor_weight_scores(model, sites, loader, device)
    if on != "output":
        raise ValueError(f"taylor scores are on one of {TAYLOR_ON}, got {on!r}")
    return {k: v.cpu() for k, v in compute_beta(model, Gates.constant(model, sites, 1.0), loader, device,
                                                "per-batch").items()}


def filter_parameters(model: nn.Module, site: GateSite) -> list[nn.Parameter]:
    """The parameters whose first dimension is the site's filters: conv weight and bias, BN scale and shift."""
    modules = [model.get_submodule(site.conv)] + ([model.get_submodule(site.module)] if site.module != site.conv else [])
    return [p for m in modules for p in (getattr(m, "weight", None), getattr(m, "bias", None))
            if isinstance(p, nn.Parameter)]


def taylor_weight_scores(model: nn.Module, sites: list[GateSite], loader: DataLoader,
                         device: torch.device) -> dict[str, torch.Tensor]:
    """Σ_batches (Σ_{w ∈ filter} ∂L/∂w · w)² per filter, in eval mode, weights unchanged."""
    params = {s.module: filter_parameters(model, s) for s in sites}
    flat = [p for ps in params.values() for p in ps]
    scores = {k: torch.zeros(ps[0].shape[0], device=device) for k, ps in params.items()}
    for grads in batch_gradients(model, flat, loader, device, "taylor"):
        terms = {p: (g * p.detach().float()).reshape(p.shape[0], -1).sum(1) for p, g in zip(flat, grads)}
        for k, ps in params.items():
            scores[k] += sum((terms[p] for p in ps), torch.zeros_like(scores[k])).pow(2)
    broadcast_tensors(scores)
    return {k: v.cpu() for k, v in scores.items()}


@dataclass
class TaylorOptions:
    taylor_on: str = option("output", "taylor: score each filter's output (Molchanov et al. 2017) or its weights, "
                            "conv filter and BatchNorm scale and shift (Molchanov et al. 2019)", TAYLOR_ON)


@register
class Taylor(Criterion[TaylorOptions]):
    name = "taylor"
    summary = "first-order Taylor score of each filter's output (TransTailor without alpha), or its weights"
    Options = TaylorOptions
    needs_data = True

    def __call__(self, ctx: ScoreContext) -> Scores:
        return Scores(taylor_scores(ctx.model, ctx.sites, ctx.loader, ctx.device, self.options.taylor_on))
