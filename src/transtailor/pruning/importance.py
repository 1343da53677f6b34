"""Target-aware filter importance: train the scaling factors α (Eq. 3), then β = |∂L/∂α · α| (Eq. 5).

β accumulation, over every batch of the train split (``mode``):

- ``literal``: β = |Σ_batches ∂L_b/∂α · α|, the gradient of the loss over the whole split. Once α
  sits at a minimum, the summed gradient largely cancels, so this ranks mostly by noise.
- ``per-batch``: β = Σ_batches |∂L_b/∂α · α|, the magnitude per batch (as Gate Decorator does).
- ``squared``: β = Σ_batches (∂L_b/∂α · α)², second-moment Taylor (Molchanov et al. 2019).

The sums are kept by :class:`BetaSums`, fed either by a pass of their own after α training
(:func:`accumulate_beta`, the paper's order) or by the α training's own batches (``on_batch`` of
:func:`train_alpha`), which costs no extra pass.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from ..distributed import all_reduce_sum, average_, average_gradients, broadcast_tensors
from ..progress import progress
from ..training.loop import autocast_for, set_train_mode
from .gates import Gates, GateSite

log = logging.getLogger("transtailor")

BETA_MODES = ("literal", "per-batch", "squared")


def _frozen(model: nn.Module) -> dict[nn.Parameter, bool]:
    state = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    return state


def _restore(state: dict[nn.Parameter, bool]) -> None:
    for p, flag in state.items():
        p.requires_grad_(flag)


def train_alpha(
    model: nn.Module,
    sites: list[GateSite],
    loader: DataLoader,
    device: torch.device,
    *,
    epochs: int = 1,
    lr: float = 0.01,
    init: str = "ones",
    seed: int = 0,
    l1: float = 0.0,
    on_batch: Callable[[Gates, int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> Gates:
    """Train one scaling factor per filter with every weight and BN statistic frozen (Eq. 3).

    ``l1`` adds λ·Σ|α| to the loss (Gate Decorator's sparsity). ``on_batch(gates, epoch)`` sees the
    gates after each batch's gradient (averaged over the ranks), before the step; ``epoch`` counts
    from 1.
    """
    gates = Gates.constant(model, sites, 1.0, trainable=True)
    if init == "random":
        gen = torch.Generator().manual_seed(seed)
        for p in gates.parameters():
            p.data.copy_(torch.rand(p.shape, generator=gen).to(p.device))
    frozen = _frozen(model)
    gates.attach(model)
    opt = torch.optim.SGD(list(gates.parameters()), lr=lr, momentum=0.9)
    try:
        for epoch in range(1, epochs + 1):
            set_train_mode(model)  # every BN is frozen, so all stay in eval mode
            total, seen = 0.0, 0
            for x, y in progress(loader, desc=f"alpha {epoch}/{epochs}"):
                x, y = x.to(device), y.to(device)
                with autocast_for(device):
                    loss = F.cross_entropy(model(x), y)
                if l1:
                    loss = loss + l1 * sum(p.abs().sum() for p in gates.parameters())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                average_gradients(gates.parameters())  # the global batch's gradient on every rank
                if on_batch is not None:
                    on_batch(gates, epoch)
                opt.step()
                total += loss.item() * len(y)
                seen += len(y)
            totals = all_reduce_sum(torch.tensor([total, float(seen)], dtype=torch.float64, device=device))
            if on_epoch is not None:
                on_epoch({"phase": "alpha", "epoch": epoch, "train_loss": totals[0].item() / max(totals[1].item(), 1)})
    finally:
        gates.detach()
        _restore(frozen)
    for p in gates.parameters():
        p.requires_grad_(False)
    return gates


def compute_beta(
    model: nn.Module,
    gates: Gates,
    loader: DataLoader,
    device: torch.device,
    mode: str = "per-batch",
) -> dict[str, torch.Tensor]:
    """β per gate site from the trained α, accumulated over all of ``loader`` (see module doc)."""
    return accumulate_beta(model, gates, loader, device, (mode,))[mode]


def batch_gradients(
    model: nn.Module,
    tensors: Sequence[torch.Tensor],
    loader: DataLoader,
    device: torch.device,
    desc: str,
) -> Iterator[list[torch.Tensor]]:
    """∂L_b/∂t for each of ``tensors``, one list per batch of ``loader`` (averaged over the ranks, float).

    The model runs in eval mode (no dropout noise) with every weight frozen except ``tensors``; its
    mode and ``requires_grad`` flags are restored afterwards. Nothing is updated.
    """
    frozen = _frozen(model)
    for t in tensors:
        t.requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        for x, y in progress(loader, desc=desc):
            x, y = x.to(device), y.to(device)
            with autocast_for(device):
                loss = F.cross_entropy(model(x), y)
            yield average_([g.float() for g in torch.autograd.grad(loss, tensors)])
    finally:
        _restore(frozen)
        model.train(was_training)


class BetaSums:
    """Running β sums (Eq. 5) for each of ``modes``, one batch's ∂L_b/∂α and α at a time."""

    def __init__(self, modes: Sequence[str] = ("per-batch",)) -> None:
        unknown = set(modes) - set(BETA_MODES)
        if unknown:
            raise ValueError(f"beta mode must be one of {BETA_MODES}, got {sorted(unknown)}")
        self.sums: dict[str, dict[str, torch.Tensor]] = {m: {} for m in modes}

    def add(self, key: str, grad: torch.Tensor, alpha: torch.Tensor) -> None:
        term = grad.float() * alpha.detach().float()
        for mode, sums in self.sums.items():
            value = term if mode == "literal" else term.abs() if mode == "per-batch" else term.pow(2)
            sums[key] = sums[key] + value if key in sums else value

    def add_gates(self, gates: Gates) -> None:
        """The batch whose gradient the gates' ``.grad`` holds (``on_batch`` of :func:`train_alpha`)."""
        for key, g in gates.values.items():
            assert g.grad is not None, "add_gates needs the gates' gradient"
            self.add(key, g.grad, g)

    def result(self) -> dict[str, dict[str, torch.Tensor]]:
        """β per mode and gate site; every rank gets rank 0's numbers, whatever rounding did."""
        out = {m: {k: v.abs() if m == "literal" else v.clone() for k, v in sums.items()}
               for m, sums in self.sums.items()}
        for sums in out.values():
            broadcast_tensors(sums)
        return out


def accumulate_beta(
    model: nn.Module,
    gates: Gates,
    loader: DataLoader,
    device: torch.device,
    modes: tuple[str, ...] = BETA_MODES,
) -> dict[str, dict[str, torch.Tensor]]:
    """β for each of ``modes`` from one pass over ``loader``, in eval mode (no dropout noise)."""
    sums = BetaSums(modes)
    alphas = {k: nn.Parameter(v.detach().clone()) for k, v in gates.values.items()}
    probe = Gates(gates.sites, alphas)
    probe.attach(model)
    try:
        for grads in batch_gradients(model, list(alphas.values()), loader, device, "beta"):
            for (k, a), g in zip(alphas.items(), grads):
                sums.add(k, g, a)
    finally:
        probe.detach()
    return sums.result()
