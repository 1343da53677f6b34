"""The cost interface, and the shape of every conv and linear layer as a cost model sees it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch.nn as nn

from ...models.measure import probe_forward


def _pair(value: Any) -> tuple[int, int]:
    """A conv's 2-D size argument (kernel, stride, padding, dilation) as two ints."""
    a, b = tuple(value)
    return int(a), int(b)


@dataclass(frozen=True)
class LayerSpec:
    """One conv (with the BatchNorm after it, if any) or linear layer, at one input size."""

    kind: str  # "conv" or "linear"
    cin: int
    cout: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    height: int = 1  # input spatial size
    width: int = 1
    bn: bool = False

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv" and self.groups > 1 and self.groups == self.cin == self.cout

    def key(self) -> str:
        if self.kind == "linear":
            return f"linear:{self.cin}x{self.cout}"
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        return (f"conv:{self.cin}x{self.cout}:k{k[0]}x{k[1]}:s{s[0]}x{s[1]}:p{p[0]}x{p[1]}:d{d[0]}x{d[1]}"
                f":g{self.groups}:{self.height}x{self.width}:{'bn' if self.bn else 'nobn'}")

    def resized(self, cin: int | None = None, cout: int | None = None) -> "LayerSpec":
        """The same layer with other channel counts (a depthwise conv keeps in = out = groups)."""
        cin = self.cin if cin is None else max(int(cin), 1)
        cout = self.cout if cout is None else max(int(cout), 1)
        if self.depthwise:
            n = min(cin, cout)
            return replace(self, cin=n, cout=n, groups=n)
        groups = self.groups if cin % self.groups == 0 and cout % self.groups == 0 else 1
        return replace(self, cin=cin, cout=cout, groups=groups)

    def module(self) -> nn.Module:
        if self.kind == "linear":
            return nn.Linear(self.cin, self.cout)
        conv = nn.Conv2d(self.cin, self.cout, self.kernel, self.stride, self.padding, self.dilation, self.groups,
                         bias=not self.bn)
        return nn.Sequential(conv, nn.BatchNorm2d(self.cout), nn.ReLU()) if self.bn else conv

    def input_shape(self, batch: int) -> tuple[int, ...]:
        if self.kind == "linear":
            return (batch, self.cin)
        return (batch, self.cin, self.height, self.width)


@dataclass
class GroupLayers:
    """The layers one coupled group of ``channels`` channels touches.

    ``touched[layer] = (out_indices, in_indices)``: how many of the layer's output and input
    indices the group's channels map to (a channel may map to several, e.g. a flatten before a
    linear layer; a group may cover part of a layer, e.g. one input of a concatenation).
    """

    channels: int
    touched: dict[str, tuple[int, int]]

    def specs_at(self, specs: dict[str, LayerSpec], kept: int) -> dict[str, LayerSpec]:
        """Each touched layer's spec with the group at ``kept`` channels (the other dimension as it is)."""
        removed = self.channels - kept
        out = {}
        for name, (n_out, n_in) in self.touched.items():
            spec = specs.get(name)
            if spec is None:
                continue
            cout = spec.cout - removed * n_out // self.channels if n_out else None
            cin = spec.cin - removed * n_in // self.channels if n_in else None
            if spec.depthwise and n_out and not n_in:
                cin = cout
            out[name] = spec.resized(cin=cin, cout=cout)
        return out


class Cost(Protocol):
    """What the selection routine asks of a cost."""

    unit: str
    #: a removal must save more than this share of the model's total to be made (0: any saving)
    min_saving_share: float

    def total(self, model: nn.Module) -> float:
        """The model's cost now."""
        ...

    def group_costs(self, model: nn.Module, groups: list[GroupLayers], widths: list[list[int]]) -> list[list[float]]:
        """For each group, the cost of the layers it touches at each of the given kept widths."""
        ...


def layer_specs(model: nn.Module, image_size: int, bn_convs: set[str] | frozenset[str] = frozenset()) -> dict[str, LayerSpec]:
    """The spec of every ``nn.Conv2d`` and ``nn.Linear`` that runs on an ``image_size`` input, by name.

    ``bn_convs`` names the convs a BatchNorm follows (timed together with it).
    """
    seen: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_pre_hook(lambda mod, i, n=name: seen.__setitem__(n, tuple(i[0].shape))))
    probe_forward(model, image_size, handles)
    specs: dict[str, LayerSpec] = {}
    for name, m in model.named_modules():
        if name not in seen:
            continue
        shape = seen[name]
        if isinstance(m, nn.Linear):
            specs[name] = LayerSpec("linear", m.in_features, m.out_features)
        elif isinstance(m, nn.Conv2d):
            same = (m.dilation[0] * (m.kernel_size[0] - 1) // 2, m.dilation[1] * (m.kernel_size[1] - 1) // 2)
            # padding="same", or timm's Conv2dSame, which pads in forward and reports (0, 0)
            dynamic = not isinstance(m.padding, tuple) or type(m).__name__.endswith("Same")
            pad = same if dynamic else m.padding
            specs[name] = LayerSpec("conv", m.in_channels, m.out_channels, _pair(m.kernel_size), _pair(m.stride),
                                    _pair(pad), _pair(m.dilation), m.groups, shape[-2], shape[-1],
                                    name in bn_convs)
    return specs
