"""From ``--data`` to checked train / val / test loaders.

The only place that decides splits: a recipe or folder gives train and test (and maybe val);
unreadable files are skipped and counted; every class must keep images; validation is held out of
train (stratified, seeded) unless the data has its own val split. Selection uses val; test is only
reported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Sized, cast

import torch
from torch.utils.data import DataLoader, Dataset

from ..distributed import world_size
from ..errors import ConfigError, DataError
from .cache import decode_resized, find_unreadable
from .datasets import ImageDataset, TensorImageDataset
from .folders import read_image_folder
from .images import LabeledImages, why_unreadable
from .recipes import RECIPES, RecipeOptions
from .sampling import ShardSampler, TrainSampler
from .splits import split_off, stratified_indices
from .transforms import build_transform, resize_size

log = logging.getLogger(__name__)


@dataclass
class DataBundle:
    """Loaders for the three splits plus what a run records about them."""

    classes: list[str]
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader
    counts: dict[str, int]
    skipped: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def read_splits(
    data: str,
    data_root: str | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    caltech_split: str = "random",
    caltech_clutter: bool = False,
) -> dict[str, LabeledImages]:
    """``train``, ``test`` and maybe ``val`` for a recipe name or an image folder (files not yet checked)."""
    if data in RECIPES:
        opt = RecipeOptions(Path(data_root) if data_root else None, seed, test_fraction, caltech_split, caltech_clutter)
        splits = RECIPES[data](opt)
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(
                f"data path {data} does not exist (and is not a recipe: {', '.join(sorted(RECIPES))})"
            )
        splits = read_image_folder(path)
        if "all" in splits:
            train, test = split_off(splits.pop("all"), test_fraction, seed)
            splits = {"train": train, "test": test}
    return splits


def build_data(
    data: str,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_pct: float = 0.875,
    batch_size: int = 32,
    eval_batch_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache: bool = False,
    workers: int = -1,
    data_root: str | None = None,
    device: torch.device | None = None,
    caltech_split: str = "random",
    caltech_clutter: bool = False,
) -> DataBundle:
    """Read, check and split the data, and wrap it in loaders with the paper's transforms."""
    splits = read_splits(data, data_root, seed=seed, test_fraction=test_fraction,
                         caltech_split=caltech_split, caltech_clutter=caltech_clutter)
    classes = splits["train"].classes
    side = resize_size(image_size, crop_pct)
    cleaned: dict[str, tuple[LabeledImages, list[torch.Tensor] | None]] = {}
    skipped: list[str] = []
    for name, images in splits.items():
        if cache:
            tensors, bad = decode_resized(images, side, desc=f"caching {name}")
        else:
            tensors, bad = None, find_unreadable(images, desc=f"checking {name}")
        skipped += [images.describe(i) for i in bad]
        keep = sorted(set(range(len(images))) - set(bad))
        cleaned[name] = (images.subset(keep), tensors)
    if skipped:
        reason = why_unreadable(skipped[0]) if Path(skipped[0]).is_file() else "not a file"
        log.warning("skipped %d unreadable image file(s), e.g. %s (%s)", len(skipped), skipped[0], reason)

    if "val" not in cleaned and val_fraction > 0:
        images, tensors = cleaned["train"]
        kept, held = stratified_indices(images.targets, val_fraction, seed)
        cleaned["train"] = (images.subset(kept), [tensors[i] for i in kept] if tensors is not None else None)
        cleaned["val"] = (images.subset(held), [tensors[i] for i in held] if tensors is not None else None)

    for name, (images, _) in cleaned.items():
        _check_classes(name, images, skipped)

    datasets: dict[str, Dataset] = {}
    for name, (images, tensors) in cleaned.items():
        tf = build_transform(image_size, crop_pct, mean, std, train=name == "train", resized=tensors is not None)
        datasets[name] = (TensorImageDataset(tensors, images.targets, tf) if tensors is not None
                          else ImageDataset(images, tf, min_side=side))

    n_workers = _workers(workers, cache)
    pin = device is not None and device.type == "cuda"
    world = world_size()
    if batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} is the global batch: it must divide evenly over the "
                          f"{world} processes")
    train_ds = datasets["train"]
    common: dict[str, Any] = dict(num_workers=n_workers, pin_memory=pin, persistent_workers=n_workers > 0)
    # one step's global batch is the same images whatever the number of processes (see .sampling)
    train_loader = DataLoader(train_ds, batch_size=batch_size // world, sampler=TrainSampler(train_ds, seed),
                              drop_last=len(cast(Sized, train_ds)) > batch_size, **common)
    eval_bs = eval_batch_size or batch_size * 2

    def eval_loader(ds: Dataset) -> DataLoader:
        return DataLoader(ds, batch_size=eval_bs, sampler=ShardSampler(ds), **common)

    return DataBundle(
        classes=list(classes),
        train_loader=train_loader,
        val_loader=eval_loader(datasets["val"]) if "val" in datasets else None,
        test_loader=eval_loader(datasets["test"]),
        counts={k: len(cast(Sized, v)) for k, v in datasets.items()},
        skipped=skipped,
    )


def _check_classes(split: str, images: LabeledImages, skipped: list[str]) -> None:
    if len(images) == 0:
        raise DataError(f"the {split} split holds no readable images")
    if len(images.classes) < 2:
        only = f" ({images.classes[0]!r})" if images.classes else ""
        raise DataError(f"the data has {len(images.classes)} class{only}: a classifier needs at least 2 class "
                        "folders, each holding that class's images")
    for name, count in zip(images.classes, images.class_counts()):
        if count == 0:
            extra = f" ({len(skipped)} unreadable files were skipped)" if skipped else ""
            raise DataError(f"class {name!r} has no images in the {split} split{extra}; add images or remove the class")


def _workers(workers: int, cache: bool) -> int:
    if workers >= 0:
        return workers
    if cache:
        return 0  # tensors in memory: crops and flips are cheaper than inter-process transfer
    return min(4, os.cpu_count() or 1)
