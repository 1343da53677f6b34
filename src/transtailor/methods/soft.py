"""The fine-tuning of a criterion that prunes while it trains (SFP, :mod:`transtailor.pruning.soft`).

After every epoch the criterion scores the filters, and those whose removal would reach the step's
MACs target are zeroed (they stay trainable); the epoch kept at the end has exactly its zeroed
filters removed.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..config import IterativeConfig
from ..pruning import GateSite, PruneRecord
from ..pruning.pruner import remove_channels
from ..pruning.soft import soft_select, zero_channels
from ..training import FitResult
from .budget import resolve_round_to
from .setup import Setup
from .finetune import finetune_phase


def soft_prune_phase(s: Setup[IterativeConfig], it: int, sites: list[GateSite], target: int, epochs: int,
                     score: Callable[[], dict[str, torch.Tensor]]) -> tuple[PruneRecord, FitResult]:
    """Fine-tune with soft pruning after every epoch (filters ranked by ``score()``, the criterion's scores
    of the model as it is then), then remove the kept epoch's zeroed filters."""
    cfg, model, head = s.cfg, s.bundle.model, s.bundle.head
    selections: dict[int, dict[str, torch.Tensor]] = {}
    widths = resolve_round_to(cfg, s.device)

    def soft_prune(epoch: int) -> None:
        selections[epoch] = soft_select(model, sites, target, s.image_size, head, cfg.min_channels,
                                        cfg.max_layer_fraction, scores=score(), round_to=widths)
        zero_channels(model, sites, selections[epoch])

    fitted = finetune_phase(s, "full", epochs, f"finetune{it}", {"iteration": it}, after_train=soft_prune)
    if fitted.best_epoch not in selections:  # no training epoch: a hard prune of the weakest filters
        soft_prune(fitted.best_epoch)
    record = remove_channels(model, sites, selections[fitted.best_epoch], s.image_size, head)
    return record, fitted
