"""Image folders: ``PATH/{train,test}[/val]/<class>/<image>`` or ``PATH/<class>/<image>``."""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from ..errors import DataError
from .images import LabeledImages

SPLIT_NAMES = ("train", "val", "test")


def read_class_folders(root: Path, classes: list[str] | None = None) -> LabeledImages:
    """Every image file under ``root/<class>/`` (torchvision's ``ImageFolder`` rules)."""
    if classes is None:
        classes = class_names(root)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    return LabeledImages([p for p, _ in samples], [t for _, t in samples], list(classes))


def class_names(root: Path) -> list[str]:
    try:
        classes, _ = find_classes(str(root))
    except FileNotFoundError:
        raise DataError(f"{root} holds no class folders; put each class's images in {root}/<class name>/") from None
    return classes


def refuse_repeated_folders(root: Path) -> None:
    """Raise :class:`DataError` if a folder under ``root`` is reached twice through symbolic links.

    torchvision follows links: a link to a parent loops (the walk hangs or multiplies the data), and
    a second path to one folder gives the same images twice, possibly under two labels or splits.
    """
    seen: dict[str, str] = {}
    for dirpath, _, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            raise DataError(f"{dirpath} is {seen[real]} again, through a symbolic link (a loop, or a second path "
                            "to one folder): remove the link, or copy the images")
        seen[real] = dirpath


def refuse_repeated_files(splits: dict[str, LabeledImages]) -> None:
    """Raise :class:`DataError` if one file (after resolving links) is listed twice across ``splits``."""
    seen: dict[str, str] = {}
    for images in splits.values():
        for item in images.items:
            if not isinstance(item, str):
                continue
            real = os.path.realpath(item)
            if real in seen:
                raise DataError(f"{item} and {seen[real]} are the same file (through a symbolic link): each image "
                                "may appear once, in one class of one split")
            seen[real] = item


def read_image_folder(root: Path) -> dict[str, LabeledImages]:
    """The splits found under ``root``: ``{'train', 'test'[, 'val']}`` or ``{'all'}``."""
    if not root.exists():
        raise DataError(f"data path {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder")
    refuse_repeated_folders(root)
    splits = _read_splits(root)
    refuse_repeated_files(splits)
    return splits


def _read_splits(root: Path) -> dict[str, LabeledImages]:
    present = {n for n in SPLIT_NAMES if (root / n).is_dir()}
    if not present:
        return {"all": read_class_folders(root)}
    if "train" not in present or "test" not in present:
        missing = "train" if "train" not in present else "test"
        raise DataError(f"{root} has {', '.join(sorted(present))}/ but no {missing}/; give both train/ and test/")
    names = {n: class_names(root / n) for n in present}
    for n in present - {"train"}:
        if names[n] != names["train"]:
            only_train = sorted(set(names["train"]) - set(names[n]))
            only_other = sorted(set(names[n]) - set(names["train"]))
            detail = "; ".join(
                s for s in (
                    f"only in train/: {', '.join(only_train[:5])}" if only_train else "",
                    f"only in {n}/: {', '.join(only_other[:5])}" if only_other else "",
                ) if s
            )
            raise DataError(f"train/ and {n}/ in {root} have different class folders ({detail}); make them match")
    return {n: read_class_folders(root / n, names["train"]) for n in present}
