"""Transfer regularisers added to the training loss: L2, L2-SP and DELTA.

The *starting point* w⁰ is the model as it is when the phase begins: the pretrained backbone for
FT-Full, the freshly pruned sub-model for TransTailor's fine-tuning after each pruning step (its
shapes match the model being trained). With a regulariser the optimizer's own weight decay is
switched off: the regulariser replaces it.

``l2``
    α/2 · ‖w‖² over every trainable parameter (weight decay towards zero), α = 0.01.
``l2sp`` (Li, Grandvalet, Davoine 2018)
    α/2 · ‖w − w⁰‖² over the pretrained layers plus β/2 · ‖w‖² over the new head; α = β = 0.01.
``delta`` (Li et al. 2019)
    α/2 · Σ_j Σ_c W_jc · C_j · ‖FM_jc(w, x) − FM_jc(w⁰, x)‖² / (H_j·W_j), averaged over the batch,
    plus β/2 · ‖w‖² over the head; α = β = 0.01. The feature maps FM_j are the last gated output at
    each spatial resolution (the end of every stage). The channel attention W_j is a softmax over
    the standardised loss increase when channel c of layer j is zeroed in the starting model,
    measured on ``delta_images`` training images, so that ΣW_j = 1 and the mean weight is 1/C_j.
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..distributed import broadcast_tensors
from ..models.measure import probe_forward
from ..progress import progress

log = logging.getLogger("transtailor")

REGULARIZERS = ("none", "l2", "l2sp", "delta")
DEFAULT_ALPHA = {"l2": 0.01, "l2sp": 0.01, "delta": 0.01}
DEFAULT_BETA = 0.01


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class Regularizer:
    """A penalty on the model, computed after its forward pass; :meth:`remove` detaches any hooks."""

    def __call__(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def remove(self) -> None:
        """Detach hooks; the model is left as it was."""


class L2(Regularizer):
    def __init__(self, model: nn.Module, alpha: float) -> None:
        self.alpha = alpha
        self.params = list(model.parameters())

    def __call__(self, model: nn.Module) -> torch.Tensor:
        return 0.5 * self.alpha * sum((p.pow(2).sum() for p in self.params if p.requires_grad), torch.zeros(()))


class L2SP(Regularizer):
    def __init__(self, model: nn.Module, head: str, alpha: float, beta: float) -> None:
        self.alpha, self.beta = alpha, beta
        named = list(model.named_parameters())
        self.backbone = [(p, p.detach().clone()) for n, p in named if not _under(n, head)]
        self.head = [p for n, p in named if _under(n, head)]

    def __call__(self, model: nn.Module) -> torch.Tensor:
        sp = sum(((p - p0).pow(2).sum() for p, p0 in self.backbone if p.requires_grad), torch.zeros(()))
        return 0.5 * self.alpha * sp + _head_l2(self.head, self.beta)


class Delta(Regularizer):
    """Attention-weighted distance between the model's feature maps and the starting model's."""

    def __init__(self, model: nn.Module, head: str, layers: list[str], attention: dict[str, torch.Tensor],
                 alpha: float, beta: float) -> None:
        self.alpha, self.beta, self.layers, self.attention = alpha, beta, layers, attention
        self.head = [p for n, p in model.named_parameters() if _under(n, head)]
        self.source = copy.deepcopy(model).eval()
        for p in self.source.parameters():
            p.requires_grad = False
        self.pairs = list(zip(model.modules(), self.source.modules()))
        self.active = False
        self.target_maps: dict[str, torch.Tensor] = {}
        self.source_maps: dict[str, torch.Tensor] = {}
        self.handles = [model.register_forward_pre_hook(self._run_source)]
        for name in layers:
            self.handles.append(model.get_submodule(name).register_forward_hook(
                lambda m, i, o, n=name: self._keep(n, o)))
            self.handles.append(self.source.get_submodule(name).register_forward_hook(
                lambda m, i, o, n=name: self.source_maps.__setitem__(n, o)))

    def _keep(self, name: str, out: torch.Tensor) -> None:
        if self.active:
            self.target_maps[name] = out

    def _run_source(self, model: nn.Module, args: tuple) -> None:
        self.active = model.training  # training steps only: evaluation pays nothing
        if self.active:
            for m, src in self.pairs:  # same BatchNorm/dropout modes: identical maps at the start
                src.training = m.training
            with torch.no_grad():
                self.source(args[0])

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total = torch.zeros((), device=next(model.parameters()).device)
        for name in self.layers:
            t, s = self.target_maps.pop(name, None), self.source_maps.pop(name, None)
            if t is None or s is None:
                continue
            b, c, h, w = t.shape
            dist = (t.float() - s.float()).pow(2).flatten(2).sum(2)  # (batch, channels)
            total = total + (c * self.attention[name].to(t.device) * dist / (h * w)).sum(1).mean()
        return 0.5 * self.alpha * total + _head_l2(self.head, self.beta)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.target_maps.clear()
        self.source_maps.clear()


def _head_l2(params: Sequence[torch.Tensor], beta: float) -> torch.Tensor | float:
    if not params or beta == 0:
        return 0.0
    return 0.5 * beta * sum(p.pow(2).sum() for p in params if p.requires_grad)


def stage_outputs(model: nn.Module, modules: list[str], image_size: int) -> list[str]:
    """Of ``modules``, the last one (in execution order) at each spatial resolution: the stage ends."""
    order: list[tuple[str, int]] = []
    handles = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: order.append((n, o.shape[-1]))) for n in modules]
    probe_forward(model, image_size, handles)
    last: dict[int, str] = {}
    for name, width in order:
        last.pop(width, None)
        last[width] = name
    return list(last.values())


@torch.no_grad()
def channel_attention(model: nn.Module, layers: list[str], loader: DataLoader, device: torch.device,
                      images: int = 64, elements: int = 1 << 22) -> dict[str, torch.Tensor]:
    """DELTA's supervised attention: softmax of the standardised loss increase per zeroed channel.

    The loss with channel c of a layer zeroed is measured one image at a time, every channel at
    once: the layer's output is repeated into copies, each with one channel zeroed (as many copies
    per pass as fit in ``elements`` values, at most 256), so the network before the layer runs
    once per image instead of once per channel (tensors from before the layer, such as a residual
    input, broadcast over the copies). Where the network cannot take that (it concatenates such a
    tensor), each channel gets its own pass. Both give the same numbers.
    """
    xs, ys, n = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        n += len(y)
        if n >= images:
            break
    x, y = torch.cat(xs)[:images].to(device), torch.cat(ys)[:images].to(device)
    was_training = model.training
    model.eval()
    out: dict[str, torch.Tensor] = {}
    try:
        base = F.cross_entropy(model(x), y)
        for name in layers:
            module = model.get_submodule(name)
            try:
                losses = _zeroed_losses_per_image(model, module, x, y, elements, name)
            except RuntimeError as e:
                log.info("delta attention %s: one pass per channel (%s)", name, str(e).splitlines()[0])
                losses = _zeroed_losses_per_channel(model, module, x, y, name)
            rises = losses - base.cpu()
            z = (rises - rises.mean()) / rises.std().clamp_min(1e-12)
            out[name] = torch.softmax(z, 0)
    finally:
        model.train(was_training)
    return broadcast_tensors(out)  # each rank saw other images: all use rank 0's attention


def _output_shape(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Size:
    """The shape of ``module``'s output for one image."""
    shape: list[torch.Size] = []
    h = module.register_forward_hook(lambda m, i, o: shape.append(o.shape))
    try:
        model(x[:1])
    finally:
        h.remove()
    return shape[0]


def _zeroed_losses_per_image(model: nn.Module, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                             elements: int, name: str) -> torch.Tensor:
    """Mean loss over ``x`` with each channel of ``module``'s output zeroed, the channels batched."""
    shape = _output_shape(model, module, x)
    total = torch.zeros(shape[1], dtype=torch.float64)
    copies = max(1, min(256, elements // shape.numel()))  # big batches of big maps run slower
    chunks = [torch.arange(s, min(s + copies, len(total))) for s in range(0, len(total), copies)]

    def repeat_and_zero(cs: torch.Tensor, m: nn.Module, i: tuple, o: torch.Tensor) -> torch.Tensor:
        o = o.repeat(len(cs), *[1] * (o.dim() - 1))  # one image in, one copy per channel out
        o[torch.arange(len(cs)), cs.to(o.device)] = 0
        return o

    for j in progress(range(len(x)), desc=f"delta attention {name}"):
        for cs in chunks:
            h = module.register_forward_hook(functools.partial(repeat_and_zero, cs))
            try:
                logits = model(x[j:j + 1])
            finally:
                h.remove()
            if logits.shape[0] != len(cs):
                raise RuntimeError(f"the output has {logits.shape[0]} rows for {len(cs)} copies")
            total[cs] += F.cross_entropy(logits, y[j].expand(len(cs)), reduction="none").double().cpu()
    return (total / len(x)).float()


def _zeroed_losses_per_channel(model: nn.Module, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                               name: str) -> torch.Tensor:
    """Mean loss over ``x`` with each channel of ``module``'s output zeroed, one pass per channel."""
    losses = torch.zeros(_output_shape(model, module, x)[1])
    for c in progress(range(len(losses)), desc=f"delta attention {name}"):
        h = module.register_forward_hook(lambda m, i, o, c=c: o.index_fill(1, torch.tensor([c], device=o.device), 0))
        try:
            losses[c] = F.cross_entropy(model(x), y)
        finally:
            h.remove()
    return losses


def make_regularizer(name: str, model: nn.Module, head: str, *, alpha: float | None = None,
                     beta: float = DEFAULT_BETA, layers: list[str] | None = None,
                     attention: dict[str, torch.Tensor] | None = None) -> Regularizer | None:
    """The regulariser ``name`` with the model's current weights as its starting point."""
    if name not in REGULARIZERS:
        raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {name!r}")
    if name == "none":
        return None
    a = DEFAULT_ALPHA[name] if alpha is None else alpha
    if name == "l2":
        return L2(model, a)
    if name == "l2sp":
        return L2SP(model, head, a, beta)
    if layers is None or attention is None:
        raise ValueError("delta needs the feature layers and their channel attention")
    return Delta(model, head, layers, attention, a, beta)
