"""Measured latency as the cost: the time of the layers a group touches, read from a latency table.

For a group at kept width ``k`` the cost is the sum of the table times of every layer it touches,
with the group's dimension at ``k`` and the layer's other dimension at its current width. The
table is measured at a few widths per group (at most ``points``, always the current width and the
narrowest one allowed) and linearly interpolated between them; the curve is then made
non-increasing as channels are removed (a narrower layer may be padded to a wider one's speed), so
that no removal is credited with a negative saving.
"""

from __future__ import annotations

import torch.nn as nn

from .base import GroupLayers, LayerSpec, layer_specs
from .table import LatencyTable


class LatencyCost:
    unit = "ms"
    #: a removal must save more than this share of the model's table total (less is measurement noise,
    #: or a layer whose time does not depend on its width): such channels are kept
    min_saving_share = 1e-3

    def __init__(self, table: LatencyTable, image_size: int, bn_convs: set[str] | None = None,
                 points: int = 6) -> None:
        self.table = table
        self.image_size = image_size
        self.bn_convs = set(bn_convs or ())
        self.points = max(points, 2)
        self._specs: dict[str, LayerSpec] = {}

    def specs(self, model: nn.Module) -> dict[str, LayerSpec]:
        self._specs = layer_specs(model, self.image_size, self.bn_convs)
        return self._specs

    def total(self, model: nn.Module) -> float:
        """Sum of the table times of every conv and linear layer at the model's current widths."""
        specs = list(self.specs(model).values())
        return float(sum(self.table.lookup(specs)))

    def group_costs(self, model: nn.Module, groups: list[GroupLayers], widths: list[list[int]]) -> list[list[float]]:
        specs = self.specs(model)
        plans = []
        wanted: list[LayerSpec] = []
        for g, ks in zip(groups, widths):
            grid = _grid(ks, self.points)
            per_k = {k: list(g.specs_at(specs, k).values()) for k in grid}
            plans.append((ks, grid, per_k))
            for v in per_k.values():
                wanted += v
        self.table.lookup(wanted)  # one batch of measurements, one cache write
        out = []
        for ks, grid, per_k in plans:
            measured = {k: sum(self.table.lookup(v)) for k, v in per_k.items()}
            curve = [_interpolate(measured, k) for k in ks]
            out.append(_non_increasing(ks, curve))
        return out


def _grid(widths: list[int], points: int) -> list[int]:
    """At most ``points`` of ``widths`` (sorted, distinct), evenly spread, the widest and narrowest included."""
    ws = sorted(set(widths))
    if len(ws) <= points:
        return ws
    idx = {round(i * (len(ws) - 1) / (points - 1)) for i in range(points)}
    return [ws[i] for i in sorted(idx)]


def _interpolate(measured: dict[int, float], k: int) -> float:
    if k in measured:
        return measured[k]
    xs = sorted(measured)
    lo = max((x for x in xs if x < k), default=xs[0])
    hi = min((x for x in xs if x > k), default=xs[-1])
    if hi == lo:
        return measured[lo]
    return measured[lo] + (measured[hi] - measured[lo]) * (k - lo) / (hi - lo)


def _non_increasing(widths: list[int], costs: list[float]) -> list[float]:
    """Costs as widths shrink never rise: cost(k) = min over widths >= k of the measured cost."""
    order = sorted(range(len(widths)), key=lambda i: -widths[i])
    out = list(costs)
    best = float("inf")
    for i in order:
        best = min(best, costs[i])
        out[i] = best
    return out
