"""Seeded, stratified splits."""

from __future__ import annotations

import numpy as np

from .images import LabeledImages


def stratified_indices(targets: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (kept, held_out) with ``fraction`` of every class held out.

    Each class holds out ``round(n * fraction)`` images but always keeps at least one, so a small
    class is never emptied. The same ``seed`` gives the same split.
    """
    rng = np.random.default_rng(seed)
    targets_arr = np.asarray(targets)
    kept: list[int] = []
    held: list[int] = []
    for c in np.unique(targets_arr):
        idx = np.flatnonzero(targets_arr == c)
        rng.shuffle(idx)
        n_held = min(int(round(len(idx) * fraction)), len(idx) - 1)
        held.extend(idx[:n_held].tolist())
        kept.extend(idx[n_held:].tolist())
    return sorted(kept), sorted(held)


def split_off(images: LabeledImages, fraction: float, seed: int) -> tuple[LabeledImages, LabeledImages]:
    kept, held = stratified_indices(images.targets, fraction, seed)
    return images.subset(kept), images.subset(held)
