"""MACs as the cost: each layer's multiply-accumulates split evenly over the indices a group removes."""

from __future__ import annotations

import torch.nn as nn

from ...models.measure import layer_macs
from .base import GroupLayers


class MacCost:
    unit = "MACs"
    min_saving_share = 0.0

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size
        self._per_layer: dict[str, int] = {}

    def total(self, model: nn.Module) -> float:
        total, self._per_layer = layer_macs(model, self.image_size)
        return float(total)

    def group_costs(self, model: nn.Module, groups: list[GroupLayers], widths: list[list[int]]) -> list[list[float]]:
        """Linear in the kept width: a group's channel costs its share of every layer it touches."""
        if not self._per_layer:
            self.total(model)
        out = []
        for g, ks in zip(groups, widths):
            per_channel = 0.0
            for name, (n_out, n_in) in g.touched.items():
                macs = self._per_layer.get(name)
                if not macs:
                    continue
                m = model.get_submodule(name)
                for n_idx, dim in ((n_out, _width(m, True)), (n_in, _width(m, False))):
                    if n_idx:
                        per_channel += macs / max(dim, 1) * n_idx / g.channels
            out.append([per_channel * k for k in ks])
        return out


def _width(module: nn.Module, out: bool) -> int:
    if isinstance(module, nn.Conv2d):
        return module.out_channels if out else module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features if out else module.in_features
    return 1
