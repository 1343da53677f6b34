"""SGD with separate learning rates for the new head and the pretrained layers, and schedules."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def param_groups(model: nn.Module, head: str, lr_head: float, lr_backbone: float) -> list[dict]:
    """Trainable parameters split into the head (``head`` module prefix) and everything else."""
    head_params: list[nn.Parameter] = []
    body_params: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (head_params if name == head or name.startswith(head + ".") else body_params).append(p)
    groups = []
    if head_params:
        groups.append({"params": head_params, "lr": lr_head, "name": "head"})
    if body_params:
        groups.append({"params": body_params, "lr": lr_backbone, "name": "backbone"})
    return groups


def make_sgd(groups: list[dict], momentum: float = 0.9, weight_decay: float = 0.005) -> torch.optim.SGD:
    return torch.optim.SGD(groups, momentum=momentum, weight_decay=weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int,
                  warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule: ``cosine`` to zero, ``step`` (x0.1 at 1/2 and 3/4), or ``constant``; with
    ``warmup_steps`` the rate first rises linearly from 1/``warmup_steps`` of its value, and the schedule
    runs over the steps after the warm-up."""
    warmup = max(0, min(warmup_steps, total_steps - 1))
    total = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(step - warmup, total) / total
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if name == "step":
            return 0.1 ** ((t >= 0.5) + (t >= 0.75))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
