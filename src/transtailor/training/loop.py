"""The one training loop every phase uses (fine-tuning, α training, importance-aware fine-tuning).

:func:`fit` trains for some epochs, evaluates on validation after each, keeps the weights of the
best validation epoch and restores them at the end. BatchNorm layers whose parameters are all
frozen stay in eval mode, so frozen layers keep their statistics too (FT, α training).
"""

from __future__ import annotations

import copy

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..distributed import all_reduce_sum, any_rank, sync_model, wrap_ddp
from ..errors import TransTailorError
from ..progress import progress
from .metrics import correct_topk
from .optim import make_schedule

Penalty = Callable[[nn.Module], torch.Tensor]
#: (logits, targets, images) -> loss; cross-entropy when not given
Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class TrainingDiverged(TransTailorError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_top1: float | None = None
    #: every validation metric of the kept epoch (the restored model scores exactly these)
    best_val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except BatchNorms with no trainable parameter keep their running statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = [p for p in m.parameters(recurse=False)]
            if params and not any(p.requires_grad for p in params):
                m.eval()


def autocast_for(device: torch.device):
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _to(device: torch.device, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    non_blocking = device.type == "cuda"
    x = x.to(device, non_blocking=non_blocking)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=non_blocking)


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    penalty: Penalty | None = None,
    desc: str = "train",
    net: nn.Module | None = None,
    criterion: Criterion | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and top-1 accuracy (%) over every rank's images.

    Under torchrun the forward and backward run through DistributedDataParallel (gradients averaged
    over the ranks); ``net`` is that wrapper when the caller keeps one for several epochs.
    ``penalty`` sees the plain model.
    """
    set_train_mode(model)
    net = net if net is not None else wrap_ddp(model, device)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and not torch.cuda.is_bf16_supported() else None
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    bar = progress(loader, desc=desc)
    for step, (x, y) in enumerate(bar):
        x, y = _to(device, x, y)
        with autocast_for(device):
            logits = net(x)
            loss = F.cross_entropy(logits, y) if criterion is None else criterion(logits, y, x)
            if penalty is not None:
                loss = loss + penalty(model)
        if any_rank(not bool(torch.isfinite(loss)), device):  # every rank stops together
            raise TrainingDiverged(
                f"the loss became NaN or infinite ({loss.item()} here) at step {step} of {desc}; "
                "lower the learning rates (--lr-head, --lr-backbone)"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if bar.disable is False and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    totals = all_reduce_sum(torch.stack([total_loss.float(), correct.float(),
                                         torch.tensor(float(seen), device=device)]))
    seen_all = max(totals[2].item(), 1.0)
    return {"train_loss": totals[0].item() / seen_all, "train_top1": 100.0 * totals[1].item() / seen_all}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, desc: str = "eval") -> dict[str, float]:
    """Top-1 accuracy (%), top-5 where there are more than 5 classes, and mean loss over ``loader``.

    Under torchrun each rank evaluates its shard and the counts are summed over the ranks.
    """
    was_training = model.training
    model.eval()
    loss_sum, hits, n, classes = 0.0, [0, 0], 0, 0
    try:
        for x, y in progress(loader, desc=desc):
            x, y = _to(device, x, y)
            with autocast_for(device):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            classes = logits.shape[1]
            h1, h5 = correct_topk(logits, y)
            hits[0] += h1
            hits[1] += h5
            n += len(y)
    finally:
        model.train(was_training)
    # summed over the ranks; the last entry counts ranks that saw top-5 (an empty shard sees no logits)
    totals = all_reduce_sum(torch.tensor([loss_sum, hits[0], hits[1], n, classes > 5], dtype=torch.float64,
                                         device=device if device.type == "cuda" else None)).tolist()
    n = max(totals[3], 1.0)
    out = {"loss": totals[0] / n, "top1": 100.0 * totals[1] / n}
    if totals[4] > 0:
        out["top5"] = 100.0 * totals[2] / n
    return out


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    epochs: int,
    schedule: str = "cosine",
    penalty: Penalty | None = None,
    phase: str = "train",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    after_train: Callable[[int], None] | None = None,
    criterion: Criterion | None = None,
) -> FitResult:
    """Train ``epochs`` epochs, select the epoch with the best validation top-1 and restore it.

    Without a validation loader the last epoch is kept. ``after_train(epoch)`` runs after each
    epoch's training, before its evaluation; ``on_epoch`` receives each epoch's record.
    """
    result = FitResult()
    if epochs == 0:
        return result
    scheduler = make_schedule(optimizer, schedule, epochs * len(train_loader))
    best_state: dict[str, torch.Tensor] | None = None
    start = time.perf_counter()
    net = wrap_ddp(model, device)  # rebuilt per phase: pruning between phases changes the shapes
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        record: dict[str, Any] = {"phase": phase, "epoch": epoch}
        record.update(train_epoch(model, train_loader, optimizer, device, scheduler=scheduler,
                                  penalty=penalty, desc=f"{phase} {epoch}/{epochs}", net=net,
                                  criterion=criterion))
        sync_model(model)  # BatchNorm statistics drift apart by the last step's update
        if after_train is not None:
            after_train(epoch)
        record["train_seconds"] = time.perf_counter() - t0
        record["lr"] = [g["lr"] for g in optimizer.param_groups]
        if val_loader is not None:
            val = evaluate(model, val_loader, device, desc="val")
            record.update({f"val_{k}": v for k, v in val.items()})
            if result.best_val_top1 is None or val["top1"] > result.best_val_top1:
                result.best_val_top1, result.best_epoch, result.best_val = val["top1"], epoch, val
                best_state = copy.deepcopy(model.state_dict())
        else:
            result.best_epoch = epoch
        record["seconds"] = time.perf_counter() - t0
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    del net
    if best_state is not None and result.best_epoch != epochs:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result


def freeze_all_but(model: nn.Module, trainable: Iterable[str]) -> None:
    """Freeze every parameter except those under the given module names."""
    prefixes = tuple(trainable)
    for name, p in model.named_parameters():
        p.requires_grad = any(name == t or name.startswith(t + ".") for t in prefixes)


