"""When the search stops: has the newest sub-model fallen too far below the ones kept before it?

- ``loss`` (default): the sub-model's mean validation cross-entropy is more than ``loss_tolerance``
  (relative, default 5 %) above the lowest any kept model reached. Cross-entropy counts every
  image's confidence, so one image flipping between right and wrong barely moves it, and comparing
  with the lowest value so far, not with the previous model, stops slow drift.
- ``paper``: the paper's rule: validation top-1 more than ``tau`` points below the last kept
  sub-model's. On a small validation split one image is several points (20 images: 5 points), so
  this rule stops on the first single-image miss.
- ``none``: no accuracy stop (pruning runs to its FLOPs or speed-up target, or the iteration limit).

Measured on caltech101 and cub10 (README, "Stop rule and best epoch"): ``benchmarks/stop_rules.py``
replays each rule on uncut searches from their saved validation predictions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ..config.commands import STOP_RULES
from ..records import IterationRecord, RunState, StopCheck

log = logging.getLogger("transtailor")

#: a measured speed-up within this share below the target counts as reaching it (timing noise)
SPEEDUP_TOLERANCE = 0.02


@dataclass(frozen=True)
class StopRule:
    """Decides whether the newest sub-model is kept or stops the search (see the module's docstring)."""

    name: str = "loss"
    tau: float = 0.3
    loss_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.name not in STOP_RULES:
            raise ValueError(f"stop rule must be one of {STOP_RULES}, got {self.name!r}")

    def check(self, kept: list[IterationRecord], current: IterationRecord) -> StopCheck:
        """The verdict on ``current`` against the records ``kept`` so far (iteration 0, the FT model,
        first): ``stop`` when it falls past the limit."""
        if self.name == "loss" and current.val_loss is not None:
            value = current.val_loss
            limit = min(r.val_loss for r in kept if r.val_loss is not None) * (1.0 + self.loss_tolerance)
        elif self.name == "paper" and current.val_top1 is not None and kept[-1].val_top1 is not None:
            value, limit = kept[-1].val_top1 - current.val_top1, self.tau  # the fall in points below the last kept
        else:  # no rule, or no validation split
            return StopCheck(self.name)
        return StopCheck(self.name, bool(value > limit), value, limit)

    def describe(self, check: StopCheck) -> str:
        if self.name == "loss":
            return (f"val loss {check.value:.4f} is more than {100 * self.loss_tolerance:g} % above the lowest "
                    f"so far (limit {check.limit:.4f})")
        return f"val top-1 fell {check.value:.2f} points below the last kept sub-model (tau {self.tau:g})"

    @property
    def active(self) -> bool:
        return self.name != "none" and not (self.name == "paper" and math.isinf(self.tau))


def reached_speedup(last: IterationRecord, target_speedup: float | None) -> bool:
    return (target_speedup is not None and last.speedup_batch is not None
            and last.speedup_batch >= target_speedup * (1.0 - SPEEDUP_TOLERANCE))


@dataclass(frozen=True)
class Stops:
    """When the prune-and-fine-tune loop ends and which sub-model it keeps, decided on the records alone.

    Before an iteration: the FLOPs or speed-up target reached by the last one, or the iteration limit.
    After it: the stop rule (``rule``; None for the pruning baselines, which have no accuracy stop),
    and a step that removed no MACs ends the loop too.
    """

    rule: StopRule | None = None
    target_flops_reduction: float | None = None
    target_speedup: float | None = None
    max_iterations: int = 10

    def before(self, it: int, last: IterationRecord) -> str | None:
        """Why the loop ends before iteration ``it``, the last record being ``last``; None: it goes on."""
        if self.target_flops_reduction is not None and last.flops_reduction >= self.target_flops_reduction - 1e-9:
            return "target_flops_reduction"
        if reached_speedup(last, self.target_speedup):
            return "target_speedup"
        if it > self.max_iterations:
            return "max_iterations"
        return None

    def record(self, state: RunState, records: list[IterationRecord], rec: IterationRecord) -> None:
        """Judge ``rec``, the newest iteration, against ``records`` (those before it), append it, and
        move ``state`` on: the kept iteration, the completed one, and why the loop stops, if it does."""
        last = records[-1]
        rec.best = True
        if self.rule is not None and self.rule.active:
            rec.stop_check = check = self.rule.check(records, rec)
            rec.best = not check.stop
            if check.stop:
                state.stopped = self.rule.name
                log.info("iteration %d: %s: stopping", rec.iteration, self.rule.describe(check))
        if rec.best:
            state.best = rec.iteration
        state.completed = rec.iteration
        records.append(rec)
        if state.stopped is None and rec.macs >= last.macs:
            state.stopped = "no_progress"
