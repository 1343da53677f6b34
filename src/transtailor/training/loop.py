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

from ..distributed import all_reduce_sum, any_rank, is_distributed, sync_model, wrap_ddp
from ..errors import TransTailorError
from ..progress import progress
from .predictions import Predictions
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
    seconds: float = 0.0
    #: each epoch's validation predictions, by epoch number
    val_predictions: dict[int, Predictions] = field(default_factory=dict)

    @property
    def val(self) -> Predictions | None:
        """The kept epoch's validation predictions (the restored model's)."""
        return self.val_predictions.get(self.best_epoch)

    @property
    def best_val(self) -> dict[str, float]:
        """Every validation metric of the kept epoch (the restored model scores exactly these); empty
        before any epoch was validated."""
        return self.val.metrics() if self.val is not None else {}


#: how :func:`fit` picks the epoch it keeps: the best validation top-1 (the first of equals), the
#: lowest validation loss, or the last epoch (no selection on the validation images)
EPOCH_CHOICES = ("top1", "loss", "last")


def _better(choice: str, val: dict[str, float], best: dict[str, float]) -> bool:
    if not best:
        return True
    if choice == "top1":
        return val["top1"] > best["top1"]
    if choice == "loss":
        return val["loss"] < best["loss"]
    return True  # last


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
    label_smoothing: float = 0.0,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and top-1 accuracy (%) over every rank's images.

    The loss is ``criterion`` when given, else cross-entropy with ``label_smoothing``.

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
            loss = (F.cross_entropy(logits, y, label_smoothing=label_smoothing) if criterion is None
                    else criterion(logits, y, x))
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
def predict(model: nn.Module, loader: DataLoader, device: torch.device, desc: str = "eval") -> Predictions:
    """Each image's label, predicted class, cross-entropy and top-5 hit, in the split's order.

    Under torchrun each rank evaluates its shard (:class:`~transtailor.data.sampling.ShardSampler`)
    and the per-image results are summed into place over the ranks.
    """
    was_training = model.training
    model.eval()
    n = len(loader.dataset)  # type: ignore[arg-type]
    order = list(iter(loader.sampler)) if loader.sampler is not None else list(range(n))
    # columns: label, predicted, loss, top-5 hit; rows: images
    table = torch.zeros(n, 4, dtype=torch.float64)
    pos, classes = 0, 0
    try:
        for x, y in progress(loader, desc=desc):
            x, y = _to(device, x, y)
            with autocast_for(device):
                logits = model(x)
            logits = logits.float()
            classes = logits.shape[1]
            loss = F.cross_entropy(logits, y, reduction="none")
            top = logits.topk(min(5, classes), dim=1).indices
            rows = torch.tensor(order[pos:pos + len(y)], dtype=torch.long)
            pos += len(y)
            table[rows] = torch.stack([y.double(), logits.argmax(1).double(), loss.double(),
                                       top.eq(y.view(-1, 1)).any(1).double()], 1).cpu()
    finally:
        model.train(was_training)
    if is_distributed():  # an empty shard saw no logits: the class count is the largest any rank saw
        where = device if device.type == "cuda" else torch.device("cpu")
        table = all_reduce_sum(table.to(where)).cpu()
        seen = torch.tensor([float(classes)], device=where)
        torch.distributed.all_reduce(seen, op=torch.distributed.ReduceOp.MAX)
        classes = int(seen.item())
    return Predictions(labels=table[:, 0].long(), predicted=table[:, 1].long(), loss=table[:, 2],
                       top5=table[:, 3].bool() if classes > 5 else None)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, desc: str = "eval") -> dict[str, float]:
    """Top-1 accuracy (%), top-5 where there are more than 5 classes, and mean loss over ``loader``."""
    return predict(model, loader, device, desc).metrics()


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
    epoch_choice: str = "last",
    warmup_epochs: float = 0.0,
    label_smoothing: float = 0.0,
) -> FitResult:
    """Train ``epochs`` epochs, pick the epoch to keep by ``epoch_choice`` (:data:`EPOCH_CHOICES`) and
    restore its weights.

    Without a validation loader the last epoch is kept. ``after_train(epoch)`` runs after each
    epoch's training, before its evaluation; ``on_epoch`` receives each epoch's record. The learning rate
    warms up linearly over the first ``warmup_epochs`` (see :func:`make_schedule`). Without a ``criterion``
    the loss is cross-entropy with ``label_smoothing``; a criterion applies its own.
    """
    result = FitResult()
    if epoch_choice not in EPOCH_CHOICES:
        raise ValueError(f"epoch_choice must be one of {EPOCH_CHOICES}, got {epoch_choice!r}")
    if epochs == 0:
        return result
    scheduler = make_schedule(optimizer, schedule, epochs * len(train_loader), round(warmup_epochs * len(train_loader)))
    best_state: dict[str, torch.Tensor] | None = None
    start = time.perf_counter()
    net = wrap_ddp(model, device)  # rebuilt per phase: pruning between phases changes the shapes
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        record: dict[str, Any] = {"phase": phase, "epoch": epoch}
        record.update(train_epoch(model, train_loader, optimizer, device, scheduler=scheduler,
                                  penalty=penalty, desc=f"{phase} {epoch}/{epochs}", net=net,
                                  criterion=criterion, label_smoothing=label_smoothing))
        sync_model(model)  # BatchNorm statistics drift apart by the last step's update
        if after_train is not None:
            after_train(epoch)
        record["train_seconds"] = time.perf_counter() - t0
        record["lr"] = [g["lr"] for g in optimizer.param_groups]
        if val_loader is not None:
            preds = predict(model, val_loader, device, desc="val")
            val = preds.metrics()
            result.val_predictions[epoch] = preds
            record.update({f"val_{k}": v for k, v in val.items()})
            if _better(epoch_choice, val, result.best_val):
                result.best_epoch = epoch
                # the last epoch's weights are the model's own; with "last" no earlier one is ever restored
                keep = epoch < epochs and epoch_choice != "last"
                best_state = copy.deepcopy(model.state_dict()) if keep else None
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


