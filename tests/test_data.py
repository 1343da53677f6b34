from pathlib import Path

import pytest
import torch

from conftest import shared_path, write_folder, write_image
from transtailor.data import build_data, read_splits, stratified_indices
from transtailor.errors import DataError

NORM = dict(mean=[0.5] * 3, std=[0.5] * 3)


def _build(data, **kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("workers", 0)
    return build_data(str(data), **NORM, **kw)


def _targets(loader):
    return torch.cat([y for _, y in loader]).tolist()


def test_train_test_folders_with_validation_held_out(tiny_folder):
    b = _build(tiny_folder, val_fraction=0.25, batch_size=4)
    assert b.classes == ["a", "b", "c"]
    assert b.counts == {"train": 18, "val": 6, "test": 9}
    assert sorted(_targets(b.val_loader)) == [0, 0, 1, 1, 2, 2]  # stratified
    x, _ = next(iter(b.train_loader))
    assert x.shape == (4, 3, 32, 32)


def test_val_folder_is_used_when_present(tiny_folder):
    write_folder(tiny_folder, {"a": 2, "b": 2, "c": 2}, "val", seed=3)
    b = _build(tiny_folder, val_fraction=0.5)
    assert b.counts == {"train": 24, "val": 6, "test": 9}


def test_class_folders_only_get_a_seeded_stratified_test_split(tmp_path):
    write_folder(tmp_path / "d", {"x": 10, "y": 10})
    a = read_splits(str(tmp_path / "d"), seed=1, test_fraction=0.3)
    b = read_splits(str(tmp_path / "d"), seed=1, test_fraction=0.3)
    c = read_splits(str(tmp_path / "d"), seed=2, test_fraction=0.3)
    assert a["test"].items == b["test"].items != c["test"].items
    assert a["test"].class_counts() == [3, 3]


def test_stratified_split_never_empties_a_class():
    kept, held = stratified_indices([0, 1, 1, 1, 1], 0.5, seed=0)
    assert 0 in kept and sorted(kept + held) == [0, 1, 2, 3, 4]


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _build(tmp_path / "nowhere")


def test_folder_without_class_folders(tmp_path):
    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "img.jpg")
    with pytest.raises(DataError, match="no class folders"):
        _build(tmp_path / "flat")


def test_empty_class(tiny_folder):
    (tiny_folder / "train" / "d").mkdir()
    (tiny_folder / "test" / "d").mkdir()
    write_image(tiny_folder / "test" / "d" / "0.jpg")
    with pytest.raises(DataError, match="class 'd' has no images in the train split"):
        _build(tiny_folder)


def test_train_and_test_with_different_classes(tiny_folder):
    write_folder(tiny_folder, {"zebra": 2}, "test")
    with pytest.raises(DataError, match="different class folders.*only in test/: zebra"):
        _build(tiny_folder)


def test_train_without_test(tmp_path):
    write_folder(tmp_path / "d", {"a": 2}, "train")
    with pytest.raises(DataError, match="no test/"):
        _build(tmp_path / "d")


@pytest.mark.parametrize("cache", [False, True])
def test_corrupt_files_are_skipped_and_counted(tiny_folder, cache):
    (tiny_folder / "train" / "a" / "broken.jpg").write_bytes(b"not an image at all")
    good = (tiny_folder / "train" / "b" / "000.jpg").read_bytes()
    (tiny_folder / "train" / "b" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    b = _build(tiny_folder, cache=cache, val_fraction=0.0)
    assert b.counts["train"] == 24
    assert sorted(Path(p).name for p in b.skipped) == ["broken.jpg", "truncated.jpg"]


def test_a_class_emptied_by_corrupt_files_fails(tiny_folder):
    for p in (tiny_folder / "train" / "c").iterdir():
        p.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"class 'c' has no images in the train split \(8 unreadable"):
        _build(tiny_folder)


def test_cache_gives_the_same_eval_tensors_as_decoding():
    root = shared_path("data", "hymenoptera")
    a = _build(root, image_size=64, cache=False)
    b = _build(root, image_size=64, cache=True)
    xa, ya = next(iter(a.test_loader))
    xb, yb = next(iter(b.test_loader))
    assert torch.equal(ya, yb)
    assert torch.equal(xa, xb)


def test_train_augmentation_is_seeded(tiny_folder):
    a = next(iter(_build(tiny_folder, seed=5, cache=True).train_loader))
    torch.manual_seed(123)
    b = next(iter(_build(tiny_folder, seed=5, cache=True).train_loader))
    assert torch.equal(a[1], b[1])


def test_digits_recipe_is_bundled():
    b = build_data("digits", image_size=32, **NORM, workers=0)
    assert b.num_classes == 10
    assert sum(b.counts.values()) == 1797
    assert b.counts["test"] == pytest.approx(1797 * 0.2, abs=10)


def test_cub10_follows_its_split_file():
    root = shared_path("data", "cub10")
    listed = [ln.split() for ln in (root / "split_seed0.txt").read_text().splitlines() if ln.strip()]
    b = _build(root, val_fraction=0.2)
    assert b.num_classes == 10
    n_train = sum(1 for _, split in listed if split == "train")
    assert b.counts["train"] + b.counts["val"] == n_train == 150
    assert b.counts["test"] == sum(1 for _, split in listed if split == "test") == 144
    assert sorted(_targets(b.val_loader)) == sorted([c for c in range(10) for _ in range(3)])  # 3 of 15 per class
