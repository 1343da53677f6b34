"""torch Datasets over :class:`LabeledImages`: decoded on the fly, or from the in-memory cache."""

from __future__ import annotations

from typing import Callable, Union

import torch
from torch.utils.data import Dataset

from .images import LabeledImages
from .sampling import seeded

#: an index, or (index, augmentation seed) from :class:`~.sampling.TrainSampler`
Key = Union[int, tuple[int, int]]


class ImageDataset(Dataset):
    """Decodes each image when asked (``min_side`` speeds up JPEG decoding before a resize)."""

    def __init__(self, images: LabeledImages, transform: Callable, min_side: int | None = None) -> None:
        self.images, self.transform, self.min_side = images, transform, min_side

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, int]:
        index = key[0] if isinstance(key, tuple) else key
        return seeded(self.transform, self.images.load(index, self.min_side), key), self.images.targets[index]


class TensorImageDataset(Dataset):
    """Images already decoded and resized into uint8 CHW tensors (see :mod:`.cache`)."""

    def __init__(self, tensors: list[torch.Tensor], targets: list[int], transform: Callable) -> None:
        self.tensors, self.targets, self.transform = tensors, targets, transform

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, int]:
        index = key[0] if isinstance(key, tuple) else key
        return seeded(self.transform, self.tensors[index], key), self.targets[index]
