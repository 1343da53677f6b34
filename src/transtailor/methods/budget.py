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
asks the table for ``t_next = t_now - (r_now - r_next) / a``.

The slope of one step does not hold for the next (the layers it empties differ), so with
``--latency-tries`` above 1 the step is then measured before it is made: a copy of the model is
pruned to the planned table target and timed against the original; while it lands further than a
quarter of the step from ``r_next``, the next try's target is read off the line through the
measured points nearest ``r_next`` on either side (:func:`settle_table_target`), and the try that
measured nearest is the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

import torch
import torch.nn as nn

from ..config import IterativeConfig
from ..errors import ConfigError
from ..models.timing import TimingSetup, resolve_target
from ..models.zoo import ModelBundle
from ..pruning import GateSite, find_gate_sites
from ..pruning.cost import Cost, LatencyCost, LatencyTable, MacCost
from ..records import IterationRecord

#: ``--round-to`` when not given, per latency target (measured: README, "Speed for MACs")
DEFAULT_ROUND_TO = {"cpu": 8, "onnxruntime": 8, "cuda": 8}


#: a measured try within this share of the step of the wanted time is taken
STEP_TOLERANCE = 0.25
#: a step's table target lies at most this many steps below the current total
MAX_TABLE_STEPS = 4.0


@dataclass
class TimePlan:
    """A latency-cost step's aim, relative to the original model: measured time and table total."""

    t_now: float  # the table's total now
    r_now: float  # the measured time now (1 / speed-up)
    r_want: float  # the measured time this step aims at
    total0: float  # the original model's table total, in the table's unit
    step: float  # --latency-step


@dataclass
class StepBudget:
    cost: Cost
    target: float  # in the cost's unit
    cost_aware: bool  # rank by score per unit of cost saved
    knapsack: bool = False  # exact least-score selection (measured better than greedy on latency tables)
    time_plan: TimePlan | None = None  # with the latency cost


P = TypeVar("P")


@dataclass
class Settled(Generic[P]):
    """The table target a step takes, what its try made (e.g. the pruned copy), and every try:
    (table total, measured time), relative."""

    target: float
    made: P
    tries: list[tuple[float, float]] = field(default_factory=list)


def resolve_round_to(cfg: IterativeConfig, device: torch.device | str) -> int:
    """``--round-to``, or the default of the run's latency target (``auto`` read against ``device``)."""
    if cfg.round_to is not None:
        return cfg.round_to
    return DEFAULT_ROUND_TO[resolve_target(cfg.latency_target, device)]


def check_round_to(cfg: IterativeConfig, bundle: ModelBundle, image_size: int, device: torch.device) -> None:
    """Refuse a ``--round-to`` that no prunable layer of the model is wider than: nothing could be pruned."""
    widths = resolve_round_to(cfg, device)
    convs = {site.conv for site in find_gate_sites(bundle.model, min(image_size, 64), exclude=(bundle.head,))}
    widest = max((int(m.out_channels) for n, m in bundle.model.named_modules() if n in convs), default=0)
    if widths >= widest:
        flag = f"--round-to {widths}" if cfg.round_to is not None else f"the default --round-to {widths}"
        raise ConfigError(f"{flag} is not below the width of any prunable layer of {cfg.model} (the widest has "
                          f"{widest} channels), so nothing could be pruned: use a smaller --round-to, e.g. 8")


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


def next_try(plan: TimePlan, tried: list[tuple[float, float]]) -> float:
    """The table total to try next, from the measured tries so far (regula falsi on ``r_want``).

    The line runs through the nearest point above ``r_want`` (the current model is one) and the
    nearest below; with none below, through the two nearest above (a secant: the time a removal
    buys changes along the way). Its slope is kept in [0.2, 5] as :func:`fitted_slope`'s (a noisy
    try may even measure slower).
    """
    above = sorted([(plan.t_now, plan.r_now)] + [p for p in tried if p[1] > plan.r_want], key=lambda p: p[1])
    below = [p for p in tried if p[1] <= plan.r_want]
    a = above[0]
    b = max(below, key=lambda p: p[1]) if below else above[1]
    slope = (a[1] - b[1]) / (a[0] - b[0]) if abs(a[0] - b[0]) > 1e-9 else 1.0
    t = a[0] - (a[1] - plan.r_want) / min(max(slope, 0.2), 5.0)
    if below:  # stay inside the bracket
        t = min(max(t, b[0]), a[0])
    return min(max(t, plan.t_now - MAX_TABLE_STEPS * plan.step, 0.0), plan.t_now - 1e-3 * plan.step)


def settle_table_target(plan: TimePlan, first: float, time_at: Callable[[float], tuple[float, P]],
                        tries: int) -> Settled[P]:
    """Try table totals until one's pruned copy measures within a quarter step of ``plan.r_want``.

    ``time_at(t)`` prunes a copy of the model to the relative table total ``t`` and returns its
    measured time relative to the original's, with the copy. At most ``tries`` are timed; the nearest
    is taken, and only its copy is kept.
    """
    done: list[tuple[float, float]] = []
    nearest: tuple[float, float, P] | None = None  # (distance from r_want, table total, what it made)
    t = first
    for _ in range(tries):
        r, made = time_at(t)
        if nearest is None or abs(r - plan.r_want) < nearest[0]:
            nearest = (abs(r - plan.r_want), t, made)
        done.append((t, r))
        if abs(r - plan.r_want) <= STEP_TOLERANCE * plan.step:
            break
        t = next_try(plan, done)
        if any(abs(t - u) < 1e-6 for u, _ in done):
            break
    assert nearest is not None, "settle_table_target needs at least one try"
    return Settled(nearest[1], nearest[2], done)


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
        return StepBudget(lat, t_next * total0, True, knapsack=True,
                          time_plan=TimePlan(t_now, r_now, r_next, total0, self.step))
