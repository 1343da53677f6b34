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

import math
from dataclasses import dataclass
from typing import Any

STOP_RULES = ("loss", "paper", "none")


@dataclass(frozen=True)
class StopRule:
    """Decides whether the newest sub-model is kept or stops the search (see the module's docstring)."""

    name: str = "loss"
    tau: float = 0.3
    loss_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.name not in STOP_RULES:
            raise ValueError(f"stop rule must be one of {STOP_RULES}, got {self.name!r}")

    def check(self, kept: list[dict[str, Any]], current: dict[str, Any]) -> dict[str, Any]:
        """``{"rule", "value", "limit", "stop"}`` for ``current`` against the records ``kept`` so far
        (iteration 0, the FT model, first); ``stop`` is True when it falls past the limit."""
        key = {"loss": "val_loss", "paper": "val_top1"}.get(self.name)
        if key is None or key not in current:  # no rule, or no validation split
            return {"rule": self.name, "stop": False}
        if self.name == "loss":
            value, limit = current["val_loss"], min(r["val_loss"] for r in kept) * (1.0 + self.loss_tolerance)
        else:  # paper: the fall in points below the last kept model
            value, limit = kept[-1]["val_top1"] - current["val_top1"], self.tau
        return {"rule": self.name, "value": value, "limit": limit, "stop": bool(value > limit)}

    def describe(self, check: dict[str, Any]) -> str:
        if self.name == "loss":
            return (f"val loss {check['value']:.4f} is more than {100 * self.loss_tolerance:g} % above the lowest "
                    f"so far (limit {check['limit']:.4f})")
        return f"val top-1 fell {check['value']:.2f} points below the last kept sub-model (tau {self.tau:g})"

    @property
    def active(self) -> bool:
        return self.name != "none" and not (self.name == "paper" and math.isinf(self.tau))
