"""Named data sets with their canonical splits.

Each recipe returns ``{'train', 'test'[, 'val']}`` as :class:`LabeledImages`. The paper's data sets
are read from ``--data-root`` laid out as their official archives unpack; the torchvision ones are
downloaded into ``--data-root`` when online. Missing files raise a :class:`DataError` that says
where to put them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from .images import LabeledImages
from .splits import split_off

Splits = dict[str, LabeledImages]


@dataclass
class RecipeOptions:
    data_root: Path | None
    seed: int
    test_fraction: float
    caltech_split: str = "random"  # 'random' (seeded) or 'index' (lowest file numbers)
    caltech_clutter: bool = False


RECIPES: dict[str, Callable[[RecipeOptions], Splits]] = {}
#: Image sizes for recipes whose images are far below the models' native sizes (224 px and up).
RECIPE_IMAGE_SIZE: dict[str, int] = {"digits": 96}


def recipe_image_size(data: str) -> int | None:
    """The crop size a recipe trains at when ``--image-size`` is not given (None: the model's native size)."""
    return RECIPE_IMAGE_SIZE.get(data)

#: Recipes whose files the user must provide under --data-root.
LOCAL_RECIPES = ("caltech256-30", "caltech256-60", "cub200", "stanford-dogs", "mit-indoor67")


def recipe(name: str) -> Callable[[Callable[[RecipeOptions], Splits]], Callable[[RecipeOptions], Splits]]:
    def register(fn: Callable[[RecipeOptions], Splits]) -> Callable[[RecipeOptions], Splits]:
        RECIPES[name] = fn
        return fn

    return register


# --- bundled -------------------------------------------------------------------------------------


@recipe("digits")
def digits(opt: RecipeOptions) -> Splits:
    """scikit-learn's 1797 handwritten digits (8x8, 10 classes), as RGB; a stratified test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    data = LabeledImages(list(images), d.target.astype(int).tolist(), [str(c) for c in range(10)])
    train, test = split_off(data, opt.test_fraction, opt.seed)
    return {"train": train, "test": test}


# --- the paper's data sets, from their official archives -----------------------------------------


def _root(opt: RecipeOptions, name: str, marker: str, layout: str) -> Path:
    if opt.data_root is None:
        raise DataError(f"the {name} recipe reads local files: pass --data-root FOLDER where FOLDER holds {layout}")
    root = Path(opt.data_root)
    children = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for candidate in (root, *children):
        if (candidate / marker).exists():
            return candidate
    raise DataError(f"{name}: {root} does not hold {marker}; --data-root must be the folder holding {layout}")


def _caltech256(per_class: int) -> Callable[[RecipeOptions], Splits]:
    def build(opt: RecipeOptions) -> Splits:
        root = _root(opt, f"caltech256-{per_class}", "256_ObjectCategories",
                     "256_ObjectCategories/ (unpacked 256_ObjectCategories.tar)")
        folders = sorted(p for p in (root / "256_ObjectCategories").iterdir() if p.is_dir())
        if not opt.caltech_clutter:
            folders = [f for f in folders if not f.name.endswith(".clutter")]
        rng = np.random.default_rng(opt.seed)
        train: list[tuple[str, int]] = []
        test: list[tuple[str, int]] = []
        n_test = 20
        for label, folder in enumerate(folders):
            files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".jpg"), key=_file_index)
            if len(files) < per_class + n_test:
                raise DataError(f"caltech256: {folder.name} has {len(files)} images, fewer than {per_class}+{n_test}")
            if opt.caltech_split == "random":
                order = rng.permutation(len(files))
                files = [files[i] for i in order]
            train += [(str(f), label) for f in files[:per_class]]
            test += [(str(f), label) for f in files[per_class:per_class + n_test]]
        classes = [f.name for f in folders]
        return {"train": _labeled(train, classes), "test": _labeled(test, classes)}

    return build


def _file_index(p: Path) -> tuple[int, str]:
    m = re.search(r"_(\d+)\.", p.name)
    return (int(m.group(1)) if m else 1 << 30, p.name)


RECIPES["caltech256-30"] = _caltech256(30)
RECIPES["caltech256-60"] = _caltech256(60)


@recipe("cub200")
def cub200(opt: RecipeOptions) -> Splits:
    """CUB-200-2011 with the official ``train_test_split.txt``."""
    root = _root(opt, "cub200", "train_test_split.txt", "CUB_200_2011/ (unpacked CUB_200_2011.tgz)")
    images = dict(_pairs(root / "images.txt"))
    labels = {k: int(v) - 1 for k, v in _pairs(root / "image_class_labels.txt")}
    is_train = {k: v == "1" for k, v in _pairs(root / "train_test_split.txt")}
    classes = [v for _, v in sorted(_pairs(root / "classes.txt"), key=lambda kv: int(kv[0]))]
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for key, rel in images.items():
        splits["train" if is_train[key] else "test"].append((str(root / "images" / rel), labels[key]))
    return {k: _labeled(v, classes) for k, v in splits.items()}


@recipe("stanford-dogs")
def stanford_dogs(opt: RecipeOptions) -> Splits:
    """Stanford Dogs with the official ``train_list.mat`` / ``test_list.mat``."""
    from scipy.io import loadmat

    root = _root(opt, "stanford-dogs", "train_list.mat", "Images/, train_list.mat and test_list.mat")
    lists = {}
    for split in ("train", "test"):
        mat = loadmat(str(root / f"{split}_list.mat"))
        files = [str(np.ravel(f)[0]) for f in np.ravel(mat["file_list"])]
        labels = [int(v) - 1 for v in np.ravel(mat["labels"])]
        lists[split] = list(zip(files, labels))
    by_label = {lab: rel.split("/")[0] for rel, lab in lists["train"] + lists["test"]}
    classes = [by_label[i] for i in range(len(by_label))]
    return {s: _labeled([(str(root / "Images" / rel), lab) for rel, lab in v], classes) for s, v in lists.items()}


@recipe("mit-indoor67")
def mit_indoor67(opt: RecipeOptions) -> Splits:
    """MIT Indoor-67 with the official ``TrainImages.txt`` / ``TestImages.txt``."""
    root = _root(opt, "mit-indoor67", "TrainImages.txt", "Images/, TrainImages.txt and TestImages.txt")
    lists = {s: _lines(root / f"{s.capitalize()}Images.txt") for s in ("train", "test")}
    classes = sorted({rel.split("/")[0] for rel in lists["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, rels in lists.items():
        unknown = [r for r in rels if r.split("/")[0] not in index]
        if unknown:
            raise DataError(f"mit-indoor67: {split} list names class {unknown[0].split('/')[0]!r}, absent from train")
        out[split] = _labeled([(str(root / "Images" / r), index[r.split("/")[0]]) for r in rels], classes)
    return out


def _pairs(path: Path) -> list[tuple[str, str]]:
    return [(k, v) for k, v in (line.split(" ", 1) for line in _lines(path))]


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path} is missing; unpack the official archive into {path.parent}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _labeled(pairs: list[tuple[str, int]], classes: list[str]) -> LabeledImages:
    missing = [p for p, _ in pairs if not Path(p).is_file()]
    if missing:
        raise DataError(f"{len(missing)} listed images are missing, e.g. {missing[0]}; unpack the whole archive")
    return LabeledImages([p for p, _ in pairs], [t for _, t in pairs], list(classes))


# --- torchvision downloads -----------------------------------------------------------------------


def _download_root(opt: RecipeOptions) -> Path:
    return Path(opt.data_root) if opt.data_root else Path.home() / ".cache" / "transtailor" / "datasets"


def _torchvision(name: str, make: Callable[[Path, str], Any], splits: dict[str, str],
                 files: Callable[[Any], list[str]], labels: Callable[[Any], list[int]],
                 classes: Callable[[Any], list[str]]) -> Callable[[RecipeOptions], Splits]:
    def build(opt: RecipeOptions) -> Splits:
        root = _download_root(opt)
        out: Splits = {}
        for ours, theirs in splits.items():
            try:
                ds = make(root, theirs)
            except Exception as exc:  # noqa: BLE001 - offline downloads fail in many ways
                raise DataError(
                    f"{name}: could not find or download the data under {root} ({type(exc).__name__}); "
                    f"with no network, download it elsewhere with torchvision and pass --data-root FOLDER"
                ) from None
            out[ours] = LabeledImages([str(f) for f in files(ds)], [int(t) for t in labels(ds)], classes(ds))
        if "test" not in out:
            out["train"], out["test"] = split_off(out["train"], opt.test_fraction, opt.seed)
        return out

    return build


def _tv():
    from torchvision import datasets

    return datasets


RECIPES["flowers102"] = _torchvision(
    "flowers102", lambda r, s: _tv().Flowers102(str(r), split=s, download=True),
    {"train": "train", "val": "val", "test": "test"},
    lambda d: d._image_files, lambda d: d._labels,
    lambda d: [str(i) for i in range(102)])
RECIPES["oxford-pets"] = _torchvision(
    "oxford-pets", lambda r, s: _tv().OxfordIIITPet(str(r), split=s, download=True),
    {"train": "trainval", "test": "test"},
    lambda d: d._images, lambda d: d._labels, lambda d: list(d.classes))
RECIPES["dtd"] = _torchvision(
    "dtd", lambda r, s: _tv().DTD(str(r), split=s, download=True),
    {"train": "train", "val": "val", "test": "test"},
    lambda d: d._image_files, lambda d: d._labels, lambda d: list(d.classes))
RECIPES["fgvc-aircraft"] = _torchvision(
    "fgvc-aircraft", lambda r, s: _tv().FGVCAircraft(str(r), split=s, download=True),
    {"train": "train", "val": "val", "test": "test"},
    lambda d: d._image_files, lambda d: d._labels, lambda d: list(d.classes))
RECIPES["caltech101"] = _torchvision(
    "caltech101", lambda r, s: _tv().Caltech101(str(r), target_type="category", download=True),
    {"train": "all"},
    lambda d: [str(Path(d.root) / "101_ObjectCategories" / d.categories[y] / f"image_{i:04d}.jpg")
               for i, y in zip(d.index, d.y)],
    lambda d: d.y, lambda d: list(d.categories))
