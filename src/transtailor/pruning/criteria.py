"""Filter-importance criteria of the pruning baselines, in the same per-site form as β.

Each returns one score per output channel of every gate site (``scores[site.module]``), which
:func:`~.pruner.prune_to_macs` ranks globally (coupled channels summed).

- ``l1``: the L1 norm of each filter's weights (Li et al. 2016).
- ``taylor``: first-order Taylor importance of each filter's output, Σ_batches |∂L/∂g · g| at g = 1
  (Molchanov et al. 2019): TransTailor's β without training α.
- ``random``: uniform random scores, the floor every criterion must clear.

``scope='layer'`` (the default of ``l1`` and ``sfp``) divides each site's scores by their mean, so
that the global ranking removes about the same fraction of every layer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from .gates import Gates, GateSite, site_channels
from .importance import compute_beta

CRITERIA = ("l1", "taylor", "random")


def l1_scores(model: nn.Module, sites: list[GateSite]) -> dict[str, torch.Tensor]:
    out = {}
    for s in sites:
        w = model.get_submodule(s.conv).weight.detach()
        out[s.module] = w.abs().flatten(1).sum(1).float().cpu()
    return out


def taylor_scores(model: nn.Module, sites: list[GateSite], loader: DataLoader,
                  device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in compute_beta(model, Gates.constant(model, sites, 1.0), loader, device,
                                                "per-batch").items()}


def random_scores(model: nn.Module, sites: list[GateSite], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s.module: torch.rand(site_channels(model, s), generator=gen) for s in sites}


def per_layer(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v / v.mean().clamp_min(1e-12) for k, v in scores.items()}
