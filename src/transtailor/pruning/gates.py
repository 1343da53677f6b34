"""Per-filter gates: the scaling factors α (trained) and β (frozen importance) of TransTailor.

A gate multiplies each output channel of a filter where a following normalisation cannot cancel
it: after the BatchNorm that takes the conv's output (before any activation fused into the norm,
as in timm's ``BatchNormAct2d``), or on the conv's own output where no BatchNorm follows (VGG
without BN, squeeze-excite convs). Gates are forward hooks, so the model's modules and state_dict
keys stay as they are; :func:`fold_gates` multiplies gate values into the weights so that the
exported model carries no gate at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from ..models.measure import probe_forward

_BN = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class GateSite:
    """Where one conv's filters are gated: ``module`` is the BatchNorm (or the conv itself)."""

    conv: str
    module: str
    kind: str  # 'bn' (output hook), 'bn_act' (before the fused activation) or 'conv' (output hook)


def find_gate_sites(model: nn.Module, image_size: int = 32, exclude: tuple[str, ...] = ()) -> list[GateSite]:
    """Pair every ``nn.Conv2d`` with the BatchNorm that reads its output (one forward pass).

    Convs under an ``exclude`` prefix (the classifier, for a conv head) get no gate.
    """
    names = {m: n for n, m in model.named_modules()}
    conv_of_output: dict[int, str] = {}
    bn_input: dict[str, int] = {}
    alive: list[torch.Tensor] = []  # keep outputs referenced so that no id is reused during the pass
    handles: list[RemovableHandle] = []

    def on_conv(m: nn.Module, i: tuple, o: torch.Tensor, n: str) -> None:
        alive.append(o)
        conv_of_output[id(o)] = n

    for module, name in names.items():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(lambda m, i, o, n=name: on_conv(m, i, o, n)))
        elif isinstance(module, _BN):
            handles.append(module.register_forward_pre_hook(
                lambda m, i, n=name: bn_input.__setitem__(n, id(i[0]))))
    probe_forward(model, image_size, handles)
    bn_of_conv = {conv_of_output[i]: bn for bn, i in bn_input.items() if i in conv_of_output}
    sites = []
    for module, name in names.items():
        if not isinstance(module, nn.Conv2d) or any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        if name not in conv_of_output.values():
            continue  # never ran in forward
        bn = bn_of_conv.get(name)
        if bn is None:
            sites.append(GateSite(name, name, "conv"))
        else:
            fused = isinstance(getattr(model.get_submodule(bn), "drop", None), nn.Module) and hasattr(
                model.get_submodule(bn), "act")
            sites.append(GateSite(name, bn, "bn_act" if fused else "bn"))
    return sites


def site_channels(model: nn.Module, site: GateSite) -> int:
    m: Any = model.get_submodule(site.module)
    return int(m.num_features if isinstance(m, _BN) else m.out_channels)


class Gates:
    """Gate values for a set of sites, attachable to a model as hooks.

    ``values[site.module]`` is a 1-D tensor (an ``nn.Parameter`` when trainable).
    """

    def __init__(self, sites: list[GateSite], values: Mapping[str, torch.Tensor]) -> None:
        self.sites = list(sites)
        self.values = values
        self._handles: list[RemovableHandle] = []

    @classmethod
    def constant(cls, model: nn.Module, sites: list[GateSite], value: float = 1.0,
                 trainable: bool = False) -> "Gates":
        device = next(model.parameters()).device
        values = {}
        for s in sites:
            t = torch.full((site_channels(model, s),), float(value), device=device)
            values[s.module] = nn.Parameter(t) if trainable else t
        return cls(sites, values)

    def parameters(self) -> Iterator[nn.Parameter]:
        for v in self.values.values():
            if isinstance(v, nn.Parameter):
                yield v

    def attach(self, model: nn.Module) -> "Gates":
        self.detach()
        for s in self.sites:
            module: Any = model.get_submodule(s.module)
            value = self.values[s.module]
            if s.kind == "bn_act":  # between the norm and its fused activation
                h = module.drop.register_forward_pre_hook(lambda m, i, v=value: (i[0] * v.view(1, -1, 1, 1),))
            else:
                h = module.register_forward_hook(lambda m, i, o, v=value: o * v.view(1, -1, 1, 1))
            self._handles.append(h)
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def detached_values(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.values.items()}


@torch.no_grad()
def scale_sites(model: nn.Module, sites: list[GateSite], values: Mapping[str, torch.Tensor], power: float = 1.0) -> None:
    """Multiply each site's affine output by ``values ** power``: BN weight and bias, or conv weight and bias.

    ``power=1`` folds gates into the weights; ``power=-1`` divides them out (so that gates attached
    afterwards leave the network's function unchanged).
    """
    for s in sites:
        v = values[s.module].detach().to(torch.float32) ** power
        m: Any = model.get_submodule(s.module)
        w = m.weight
        if w is not None:
            shape = (-1,) + (1,) * (w.dim() - 1)
            w.mul_(v.view(shape).to(w.dtype))
        if getattr(m, "bias", None) is not None:
            m.bias.mul_(v.to(m.bias.dtype))


def fold_gates(model: nn.Module, gates: Gates) -> None:
    """Detach ``gates`` and multiply their values into the weights: same outputs, no gates left."""
    gates.detach()
    scale_sites(model, gates.sites, gates.values, power=1.0)
