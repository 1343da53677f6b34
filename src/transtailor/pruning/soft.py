"""Soft Filter Pruning (He et al. 2018): zero the weakest filters after every epoch, keep them trainable.

After each training epoch :func:`soft_select` picks, by filter L2 norm, the channels whose removal
would bring the model to the MACs target (a dry run of the same global, dependency-aware pruning
on a weightless copy of the model's structure: MACs and the dependency graph need shapes only),
and :func:`zero_channels` zeroes them in place (the filter, its bias and its
BatchNorm's scale and shift): shapes stay, and the next epoch may revive them. At the end
:func:`~.pruner.remove_channels` removes exactly the channels of the last selection.
"""

from __future__ import annotations

import copy
import logging
from typing import cast

import torch
import torch.nn as nn

from .gates import GateSite
from .pruner import prune_to_macs

log = logging.getLogger("transtailor")


def l2_scores(model: nn.Module, sites: list[GateSite]) -> dict[str, torch.Tensor]:
    """L2 norm of each filter (SFP's criterion), with an index tie-break so that equal norms rank in a fixed order."""
    out = {}
    for s in sites:
        w = cast(torch.Tensor, model.get_submodule(s.conv).weight).detach().float().cpu()
        norms = w.flatten(1).norm(dim=1).double()
        out[s.module] = norms + torch.arange(len(norms), dtype=torch.float64) * 1e-12
    return out


def soft_select(model: nn.Module, sites: list[GateSite], target_macs: int, image_size: int, head: str,
                min_channels: int = 1, max_fraction: float = 1.0,
                scores: dict[str, torch.Tensor] | None = None, round_to: int = 1) -> dict[str, torch.Tensor]:
    """Channels (``True``) the ranking would remove to reach ``target_macs``; the model is untouched.

    ``scores`` default to the filters' L2 norms (:func:`l2_scores`).
    """
    scores = l2_scores(model, sites) if scores is None else scores

    def dry_run(copied: nn.Module):
        return prune_to_macs(copied, sites, scores, target_macs, image_size, head, min_channels=min_channels,
                             max_fraction=max_fraction, round_to=round_to)[0]

    try:
        record = dry_run(shape_copy(model))
    except (RuntimeError, NotImplementedError) as exc:  # an operator without a meta kernel: copy the weights too
        log.debug("soft pruning: dry run on a full copy (%s)", exc)
        record = dry_run(copy.deepcopy(model))
    masks = {k: torch.zeros(len(v), dtype=torch.bool) for k, v in scores.items()}
    for k, removed in record.removed_channels.items():
        masks[k][removed] = True
    return masks


def shape_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are on the meta device: shapes, no data."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


@torch.no_grad()
def zero_channels(model: nn.Module, sites: list[GateSite], masks: dict[str, torch.Tensor]) -> None:
    """Zero the marked filters in place: the conv's weights and bias, and its BatchNorm's affine."""
    for s in sites:
        drop = masks[s.module]
        if not drop.any():
            continue
        for name in {s.conv, s.module}:
            m = model.get_submodule(name)
            for p in (getattr(m, "weight", None), getattr(m, "bias", None)):
                if p is not None:
                    p[drop.to(p.device)] = 0
