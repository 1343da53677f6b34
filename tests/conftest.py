"""Shared fixtures: real data from ../shared (skipped with a reason when absent) and image trees
that the tests write themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"

#: the smallest real run: an untrained resnet18 at 32 px, one epoch a phase, one thread, no latency
#: timing. Tests add what they need: ``dict(TINY, epochs=2)``. TINY_TRAIN for every command; TINY, for the
#: pruning commands, also turns the default recovery off (a test that recovers asks for it).
TINY_TRAIN = dict(model="resnet18", weights="none", image_size=32, batch_size=8, workers=0, epochs=1,
                  latency=False, threads=1)
TINY = dict(TINY_TRAIN, recover_epochs=0)


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test reads the real data in ../shared beside the project")
    return path


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30), color: int | None = None) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if color is not None:  # a class-dependent tint makes the task learnable
        arr[..., color % 3] = np.clip(arr[..., color % 3].astype(int) // 2 + 128, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_folder(root: Path, classes: dict[str, int], split: str | None = None, seed: int = 0) -> Path:
    """``root[/split]/<class>/<i>.jpg`` with the given number of images per class."""
    base = root / split if split else root
    for ci, (name, n) in enumerate(classes.items()):
        (base / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(base / name / f"{i:03d}.jpg", seed=seed * 1000 + ci * 100 + i, color=ci)
    return root


def make_tiny_folder(root: Path) -> Path:
    """train/ and test/ with three classes under ``root``."""
    write_folder(root, {"a": 8, "b": 8, "c": 8}, "train")
    write_folder(root, {"a": 3, "b": 3, "c": 3}, "test", seed=1)
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """train/ and test/ with three classes."""
    return make_tiny_folder(tmp_path / "data")


@pytest.fixture(autouse=True)
def _fast_torch():
    torch.set_num_threads(2)
    yield


@pytest.fixture(autouse=True)
def _own_latency_cache(tmp_path_factory, monkeypatch):
    """Latency tables go to a folder of the test's own, never into the user's cache (fake timers write there)."""
    monkeypatch.setenv("TRANSTAILOR_CACHE", str(tmp_path_factory.mktemp("transtailor-cache")))


@pytest.fixture
def fake_speed(monkeypatch):
    """Timing by arithmetic, so that latency-driven behaviour is deterministic: a model's measured
    speed-up is its MACs ratio to the reference, and a latency table entry is the layer's channel
    product (in place of ``time_spec``)."""
    from transtailor.models import timing
    from transtailor.models.measure import layer_macs
    from transtailor.models.timing import Latency
    from transtailor.pruning.cost import table

    class Runner:  # what make_runner returns: the model and the input size it is timed at
        def __init__(self, model, input_shape, setup):
            self.model, self.size = model, input_shape[-1]

        def __call__(self):
            return None

    def compare(models, reference, input_shape, setup, rounds=5):
        macs = {k: layer_macs(m.model, m.size)[0] if isinstance(m, Runner) else layer_macs(m, input_shape[-1])[0]
                for k, m in models.items()}
        return {k: Latency(ms=macs[k] / 1e6, speedup=macs[reference] / macs[k],
                           speedup_min=macs[reference] / macs[k], speedup_max=macs[reference] / macs[k])
                for k in models}

    def entry(spec, setup):
        return spec.cin * spec.cout * spec.kernel[0] * spec.kernel[1] / max(spec.groups, 1) * spec.height * \
            spec.width * 1e-6

    monkeypatch.setattr(timing, "compare_latency", compare)  # where it is defined; methods look it up there
    monkeypatch.setattr(timing, "make_runner", Runner)
    monkeypatch.setattr(table, "time_spec", entry)
