"""A labelled list of images: files on disk or arrays in memory, with class names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
from PIL import Image

Item = Union[str, np.ndarray]


_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit greyscale (and 32-bit integer holding it) is scaled to 0-255: Pillow's
    ``convert("RGB")`` clips it, so a 16-bit PNG would come out nearly white."""
    if img.mode in _WIDE_GREY:
        arr = np.asarray(img).astype(np.float64)
        if img.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0  # 65535 -> 255
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    return img.convert("RGB")


def why_unreadable(path: str) -> str:
    """Why a file does not decode, as one short phrase (empty if it decodes now)."""
    try:
        with Image.open(path) as img:
            img.load()
    except Image.DecompressionBombError as exc:
        return f"{exc}; resize the image (Pillow refuses images this large to guard against decompression bombs)"
    except Exception as exc:  # noqa: BLE001 - any failure is the reason
        return f"{type(exc).__name__}: {exc}"
    return ""


@dataclass
class LabeledImages:
    """Images (paths or HxW[x3] uint8 arrays), their integer targets and the class names."""

    items: list[Item]
    targets: list[int]
    classes: list[str]

    def __post_init__(self) -> None:
        if len(self.items) != len(self.targets):
            raise ValueError("items and targets differ in length")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, min_side: int | None = None) -> Image.Image:
        """The image as RGB PIL (decoding a file, or wrapping an array).

        ``min_side`` lets JPEG decoding skip detail that a resize to that shorter side would drop.
        """
        item = self.items[index]
        if isinstance(item, str):
            with Image.open(item) as img:
                if min_side:
                    img.draft("RGB", (min_side, min_side))
                return to_rgb(img)
        arr = np.asarray(item)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        return Image.fromarray(arr.astype(np.uint8), "RGB")

    def describe(self, index: int) -> str:
        item = self.items[index]
        return item if isinstance(item, str) else f"array #{index}"

    def subset(self, indices: Sequence[int]) -> "LabeledImages":
        return LabeledImages([self.items[i] for i in indices], [self.targets[i] for i in indices], self.classes)

    def class_counts(self) -> list[int]:
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes)).tolist()
