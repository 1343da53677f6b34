"""The paper's transforms: random crop + flip for training, resize + centre crop for evaluation."""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms import v2


def resize_size(image_size: int, crop_pct: float) -> int:
    """Shorter side images are resized to before cropping ``image_size``."""
    return int(round(image_size / crop_pct))


def build_transform(
    image_size: int,
    crop_pct: float,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    train: bool,
    resized: bool = False,
) -> v2.Compose:
    """Transform a PIL image (or, with ``resized=True``, an already resized uint8 tensor)."""
    steps: list = []
    if not resized:  # resize the PIL image, exactly as the in-memory cache does
        steps.append(v2.Resize(resize_size(image_size, crop_pct), antialias=True))
    steps.append(v2.ToImage())
    if train:
        steps += [v2.RandomCrop(image_size), v2.RandomHorizontalFlip()]
    else:
        steps.append(v2.CenterCrop(image_size))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)
