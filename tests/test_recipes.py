"""Each paper recipe's parser on a small tree in the official layout (Indoor-67: the real lists)."""

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path, write_image
from transtailor.data import read_splits
from transtailor.errors import DataError


def test_mit_indoor67_with_the_official_lists(tmp_path):
    lists = shared_path("splits", "mit_indoor67")
    root = tmp_path / "indoor"
    root.mkdir()
    one = write_image(tmp_path / "one.jpg")
    for name in ("TrainImages.txt", "TestImages.txt"):
        text = (lists / name).read_text()
        (root / name).write_text(text)
        for rel in filter(None, (ln.strip() for ln in text.splitlines())):
            dst = root / "Images" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.link(one, dst)
    s = read_splits("mit-indoor67", str(root))
    assert (len(s["train"]), len(s["test"])) == (5360, 1340)
    assert len(s["train"].classes) == 67
    for split, name in (("train", "TrainImages.txt"), ("test", "TestImages.txt")):
        listed = Counter(ln.split("/")[0] for ln in (lists / name).read_text().splitlines() if ln.strip())
        assert s[split].class_counts() == [listed[c] for c in s[split].classes]
    assert s["train"].classes[s["train"].targets[0]] == "gameroom"


def test_cub200_official_split_files(tmp_path):
    root = tmp_path / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    lines = {"images": [], "labels": [], "split": []}
    i = 0
    for c, cls in enumerate(classes):
        for k in range(3):
            i += 1
            rel = f"{cls}/img_{k}.jpg"
            write_image(root / "images" / rel, seed=i)
            lines["images"].append(f"{i} {rel}")
            lines["labels"].append(f"{i} {c + 1}")
            lines["split"].append(f"{i} {1 if k < 2 else 0}")
    (root / "images.txt").write_text("\n".join(lines["images"]))
    (root / "image_class_labels.txt").write_text("\n".join(lines["labels"]))
    (root / "train_test_split.txt").write_text("\n".join(lines["split"]))
    (root / "classes.txt").write_text("\n".join(f"{c + 1} {n}" for c, n in enumerate(classes)))
    s = read_splits("cub200", str(tmp_path))  # the folder holding CUB_200_2011/ also works
    assert s["train"].classes == classes
    assert s["train"].class_counts() == [2, 2] and s["test"].class_counts() == [1, 1]
    assert all("img_2" in p for p in s["test"].items)


def test_stanford_dogs_mat_lists(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "dogs"
    breeds = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
    files = {"train": [], "test": []}
    for b, breed in enumerate(breeds):
        for k in range(3):
            rel = f"{breed}/{breed.split('-')[0]}_{k}.jpg"
            write_image(root / "Images" / rel, seed=b * 10 + k)
            files["train" if k < 2 else "test"].append((rel, b + 1))
    for split, items in files.items():
        cell = np.empty((len(items), 1), dtype=object)
        for j, (rel, _) in enumerate(items):
            cell[j, 0] = np.array([rel])
        savemat(root / f"{split}_list.mat",
                {"file_list": cell, "labels": np.array([[lab] for _, lab in items], dtype=np.uint8)})
    s = read_splits("stanford-dogs", str(root))
    assert s["train"].classes == breeds
    assert s["train"].class_counts() == [2, 2] and s["test"].class_counts() == [1, 1]


def _caltech256(tmp_path, n=25, classes=("001.ak47", "002.american-flag", "257.clutter")):
    root = tmp_path / "256_ObjectCategories"
    for c, name in enumerate(classes):
        for k in range(1, n + 1):
            write_image(root / name / f"{name[:3]}_{k:04d}.jpg", seed=c * 100 + k, size=(8, 8))
    return tmp_path


def test_caltech256_counts_clutter_and_split_modes(tmp_path, monkeypatch):
    import transtailor.data.recipes as r

    monkeypatch.setitem(r.RECIPES, "caltech256-3", r._caltech256(3))
    root = _caltech256(tmp_path)
    s = read_splits("caltech256-3", str(root), seed=0)
    assert s["train"].classes == ["001.ak47", "002.american-flag"]  # clutter out by default
    assert s["train"].class_counts() == [3, 3] and s["test"].class_counts() == [20, 20]
    assert not set(s["train"].items) & set(s["test"].items)
    with_clutter = read_splits("caltech256-3", str(root), caltech_clutter=True)
    assert len(with_clutter["train"].classes) == 3
    index = read_splits("caltech256-3", str(root), caltech_split="index")
    assert [Path(p).name for p in index["train"].items[:3]] == ["001_0001.jpg", "001_0002.jpg", "001_0003.jpg"]
    other_seed = read_splits("caltech256-3", str(root), seed=1)
    assert other_seed["train"].items != s["train"].items


def test_caltech256_30_needs_enough_images(tmp_path):
    root = _caltech256(tmp_path, n=25)
    with pytest.raises(DataError, match="fewer than 30\\+20"):
        read_splits("caltech256-30", str(root))


@pytest.mark.parametrize("name", ["cub200", "stanford-dogs", "mit-indoor67", "caltech256-30"])
def test_local_recipes_say_where_to_put_the_files(tmp_path, name):
    with pytest.raises(DataError, match="--data-root"):
        read_splits(name, None)
    with pytest.raises(DataError, match="does not hold"):
        read_splits(name, str(tmp_path))


def test_download_recipe_offline_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvd, "Flowers102", offline)
    with pytest.raises(DataError, match="could not find or download.*--data-root"):
        read_splits("flowers102", str(tmp_path))


def test_caltech256_flags_reach_the_recipe(tmp_path, monkeypatch):
    from transtailor.config import FinetuneConfig
    from transtailor.methods.setup import prepare

    root = _caltech256(tmp_path, n=50)
    cfg = FinetuneConfig(data="caltech256-30", data_root=str(root), caltech_clutter=True, caltech_split="index",
                         model="resnet18", weights="none", image_size=16, workers=0, out=str(tmp_path / "run"))
    s = prepare(cfg, "finetune")
    assert s.data.num_classes == 3 and s.data.counts["test"] == 60
    assert s.data.classes[-1] == "257.clutter"
