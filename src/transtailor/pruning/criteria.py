"""Filter-importance criteria of the pruning baselines, in the same per-site form as β.

Each returns one score per output channel of every gate site (``scores[site.module]``), which
:func:`~.pruner.prune_to_macs` ranks globally (coupled channels summed).

- ``l1``: the L1 norm of each filter's weights (Li et al. 2016).
- ``taylor``: first-order Taylor importance of each filter's output, Σ_batches |∂L/∂g · g| at g = 1
  (Molchanov et al. 2017, 2019): TransTailor's β without training α. ``on='weight'`` scores the
  filter's parameters instead (Molchanov et al. 2019, Eq. 4): Σ_batches (Σ_{w ∈ filter} ∂L/∂w · w)²
  over the conv's filter and, where one follows, its BatchNorm scale and shift.
- ``random``: uniform random scores, the floor every criterion must clear.

``scope='layer'`` (the default of ``l1`` and ``sfp``) divides each site's scores by their mean, so
that the global ranking removes about the same fraction of every layer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..distributed import broadcast_tensors
from .gates import Gates, GateSite, site_channels
from .importance import batch_gradients, compute_beta

CRITERIA = ("l1", "taylor", "random")
TAYLOR_ON = ("output", "weight")


def l1_scores(model: nn.Module, sites: list[GateSite]) -> dict[str, torch.Tensor]:
    out = {}
    for s in sites:
        w = model.get_submodule(s.conv).weight.detach()
        out[s.module] = w.abs().flatten(1).sum(1).float().cpu()
    return out


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
            scores[k] += sum(terms[p] for p in ps).pow(2)
    broadcast_tensors(scores)
    return {k: v.cpu() for k, v in scores.items()}


def random_scores(model: nn.Module, sites: list[GateSite], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s.module: torch.rand(site_channels(model, s), generator=gen) for s in sites}


def per_layer(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v / v.mean().clamp_min(1e-12) for k, v in scores.items()}
