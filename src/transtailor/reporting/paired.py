"""How far one split tells two models apart: the images each gets right that the other misses, and the exact
two-sided McNemar test on them (a choice made on a few hundred validation images is often a coin toss)."""

from __future__ import annotations

import math
from pathlib import Path

from ..runs import read_json
from ..training.predictions import Evaluated, Predictions


def discordant(a: Predictions, b: Predictions) -> tuple[int, int]:
    """(images ``a`` gets right and ``b`` misses, the other way round), over the same split."""
    if not bool((a.labels == b.labels).all()):
        raise ValueError("the two models' predictions are not over the same images")
    return int((a.correct & ~b.correct).sum()), int((b.correct & ~a.correct).sum())


def mcnemar_p(b: int, c: int) -> float:
    """The exact two-sided McNemar p-value of ``b`` against ``c`` discordant images (1 when there are none)."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def validation_choice(first: Path, second: Path, first_name: str, second_name: str) -> str | None:
    """One line on how the validation split compares two saved models' ``predictions.json`` (None when either
    has no validation predictions)."""
    try:
        a, b = (Evaluated.from_json(read_json(p)).val for p in (first, second))
    except (OSError, ValueError, KeyError):
        return None
    if a is None or b is None or len(a) != len(b):
        return None
    only_a, only_b = discordant(a, b)
    p = mcnemar_p(only_a, only_b)
    verdict = ("on top-1 this split does not tell them apart (p >= 0.05): both are kept, compare them on data "
               "of yours" if p >= 0.05 else "the split tells them apart (p < 0.05)")
    return (f"validation ({len(a)} images): {first_name} got {only_a} right that {second_name} missed, "
            f"{second_name} {only_b} the other way (exact McNemar p = {p:.2f}); {verdict}")
