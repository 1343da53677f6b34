"""Progress bars: tqdm in a terminal, silent in logs and in every process but rank 0."""

from __future__ import annotations

from typing import Any, Iterable, TypeVar

from tqdm.auto import tqdm

from .distributed import is_main
from .interrupts import check

T = TypeVar("T")


class _Bar(tqdm):
    """tqdm that, at every step, re-raises a Ctrl-C a library swallowed (:mod:`transtailor.interrupts`)."""

    def __iter__(self):
        for item in super().__iter__():
            check()
            yield item


def progress(iterable: Iterable[T], desc: str, **kwargs: Any) -> "tqdm[T]":
    """``tqdm(iterable)`` that clears itself when done; off where stderr is not a terminal or rank > 0."""
    kwargs.setdefault("leave", False)
    return _Bar(iterable, desc=desc, disable=None if is_main() else True, **kwargs)
