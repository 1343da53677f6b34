"""What one pruning step spends: the cost (MACs or measured latency), this step's target, the widths.

**MACs** (``--cost macs``): each step removes ``--flops-step`` of the original model's MACs, the
last one only what is left to ``--target-flops-reduction``.

**Latency** (``--cost latency``): each step removes ``--latency-step`` of the original model's
*measured* latency at ``--latency-batch``, the last one only what is left to ``--target-speedup``.
The pruner reads the cost of each group from a latency table (per-layer times on the target,
:mod:`..pruning.cost`), whose sum over layers is not the model's time (layers run alone, no
elementwise glue). So the step is planned in table units through a slope fitted on measurements:
the measured relative time ``r = 1 / speed-up`` is taken to fall by ``a`` per unit fall of the
table's relative total ``t``; ``a`` starts at 1 and, once a step is measured, is the ratio of the
measured to the table's fall so far. A step that wants ``r`` to go from ``r_now`` to ``r_next``
asks the table for ``t_next = t_now - (r_now - r_next) / a``. The error of one step is corrected by
the next.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn as nn

from ..config import IterativeConfig
from ..models.timing import TimingSetup, resolve_target
from ..pruning import GateSite
from ..pruning.cost import Cost, LatencyCost, LatencyTable, MacCost
from ..records import IterationRecord

#: ``--round-to`` when not given, per latency target (measured: README, "Speed for MACs")
DEFAULT_ROUND_TO = {"cpu": 8, "onnxruntime": 8, "cuda": 8}


@dataclass
class StepBudget:
    cost: Cost
    target: float  # in the cost's unit
    cost_aware: bool  # rank by score per unit of cost saved
    knapsack: bool = False  # exact least-score selection (measured better than greedy on latency tables)


def resolve_round_to(cfg: IterativeConfig, device: torch.device | str) -> int:
    """``--round-to``, or the default of the run's latency target (``auto`` read against ``device``)."""
    if cfg.round_to is not None:
        return cfg.round_to
    return DEFAULT_ROUND_TO[resolve_target(cfg.latency_target, device)]


def step_share(cfg: IterativeConfig, flops_step: float | None) -> float | None:
    """The share of the original removed per step: ``--latency-step`` (default ``--flops-step``) with
    ``--cost latency``, else ``flops_step``."""
    if cfg.cost == "latency":
        return cfg.latency_step if cfg.latency_step is not None else flops_step
    return flops_step


def macs_target(macs_now: float, macs0: float, step: float, target_reduction: float | None) -> int:
    """MACs after one step: ``step`` of the original's MACs fewer, but never past the overall target."""
    target = macs_now - int(step * macs0)
    if target_reduction is not None:  # the last step removes only what is left to the target
        target = max(target, int((1.0 - target_reduction) * macs0))
    return int(target)


def relative_time_target(r_now: float, step: float, target_speedup: float | None) -> float:
    """Measured time after one step, relative to the original's: ``step`` less, not past the target."""
    r_next = r_now - step
    if target_speedup is not None:
        r_next = max(r_next, 1.0 / target_speedup)
    return r_next


def table_target(t_now: float, r_now: float, r_next: float, slope: float, step: float) -> float:
    """The table's relative total that should bring the measured relative time to ``r_next``.

    A step asks the table for at most twice ``step``: a slope fitted on one noisy measurement would
    otherwise ask for half the model in one step (and the fine-tuning after it could not recover).
    """
    return max(t_now - (r_now - r_next) / slope, t_now - 2.0 * step)


def fitted_slope(r_now: float, t_now: float) -> float:
    """Measured fall of relative time per unit fall of the table's relative total, so far (1 before any)."""
    if t_now >= 1.0 - 1e-6 or r_now >= 1.0:
        return 1.0
    return min(max((1.0 - r_now) / (1.0 - t_now), 0.2), 5.0)


class Budget:
    """Builds each step's :class:`StepBudget` for a run (one latency table for all its steps)."""

    def __init__(self, cfg: IterativeConfig, step: float, target_reduction: float | None,
                 target_speedup: float | None, flops_aware: bool, timing: TimingSetup | None,
                 device: torch.device | str) -> None:
        self.cfg = cfg
        self.step = step
        self.target_reduction = target_reduction
        self.target_speedup = target_speedup
        self.flops_aware = flops_aware
        self.round_to = resolve_round_to(cfg, device)
        self.table: LatencyTable | None = None
        self._total0: float | None = None  # the original model's table total
        if cfg.cost == "latency":
            assert timing is not None, "--cost latency needs latency measurement"
            self.table = LatencyTable(timing, cfg.latency_cache)

    def for_step(self, model: nn.Module, sites: list[GateSite], original: nn.Module | None,
                 iterations: list[IterationRecord]) -> StepBudget:
        size = self.cfg.image_size
        assert size is not None
        if self.table is None:
            cost = MacCost(size)
            macs0 = iterations[0].macs
            return StepBudget(cost, macs_target(cost.total(model), macs0, self.step, self.target_reduction),
                              self.flops_aware)
        assert original is not None
        lat = LatencyCost(self.table, size, {s.conv for s in sites if s.kind != "conv"})
        if self._total0 is None:
            self._total0 = lat.total(original)
        total0 = self._total0
        t_now = lat.total(model) / total0
        last = iterations[-1]
        r_now = 1.0 / last.speedup_batch if last.speedup_batch is not None else 1.0
        r_next = relative_time_target(r_now, self.step, self.target_speedup)
        t_next = table_target(t_now, r_now, r_next, fitted_slope(r_now, t_now), self.step)
        return StepBudget(lat, t_next * total0, True, knapsack=True)
