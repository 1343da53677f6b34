"""Decode every image once, resized, into memory; and check images that are not cached.

Both passes find corrupt or non-image files and return them so that callers can skip them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from ..progress import progress
from .images import LabeledImages

_THREADS = 4  # PIL decodes outside the GIL, so threads overlap I/O and decoding


def decode_resized(images: LabeledImages, side: int, desc: str = "caching") -> tuple[list[torch.Tensor], list[int]]:
    """Decode every image, resize its shorter side to ``side``; return uint8 CHW tensors and bad indices."""

    def work(i: int) -> torch.Tensor | None:
        try:
            img = images.load(i, side)
        except Exception:  # noqa: BLE001 - any decoding failure means the file is unusable
            return None
        return F.pil_to_tensor(F.resize(img, side, antialias=True)).contiguous()

    out = _map(work, range(len(images)), len(images), desc)
    bad = [i for i, t in enumerate(out) if t is None]
    return [t for t in out if t is not None], bad


def find_unreadable(images: LabeledImages, desc: str = "checking images") -> list[int]:
    """Indices of files that do not decode (a fast reduced-size decode of each file)."""

    def work(i: int) -> bool:
        item = images.items[i]
        if not isinstance(item, str):
            return True
        try:
            with Image.open(item) as img:
                img.draft("RGB", (32, 32))
                img.load()
            return True
        except Exception:  # noqa: BLE001
            return False

    ok = _map(work, range(len(images)), len(images), desc)
    return [i for i, good in enumerate(ok) if not good]


def _map(fn, items: Iterable[int], total: int, desc: str) -> list:
    with ThreadPoolExecutor(_THREADS) as pool:
        return list(progress(pool.map(fn, items), total=total, desc=desc))
