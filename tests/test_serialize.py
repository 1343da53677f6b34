import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from transtailor.errors import ModelError
from transtailor.models import create_model, load_model, save_model
from transtailor.models.serialize import load_bundle
from transtailor.models.zoo import wrap_module


def _prune(model, ratio=0.3, size=32):
    x = torch.randn(1, 3, size, size)
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=[m for m in model.modules()
                                                                       if isinstance(m, nn.Linear)])
    pruner.step()
    return model


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_lite0"])
def test_pruned_models_round_trip_without_pickled_code(tmp_path, name):
    b = create_model(name, num_classes=5, weights="none")
    before = sum(p.numel() for p in b.model.parameters())
    _prune(b.model.eval())
    assert sum(p.numel() for p in b.model.parameters()) < before
    path = save_model(tmp_path / "m.pt", b, {"classes": list("abcde"), "image_size": 32})
    payload = torch.load(path, weights_only=True)  # plain data only
    assert payload["meta"]["classes"] == list("abcde")
    loaded = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), b.model(x), rtol=0, atol=1e-5)


def test_run_folder_path_and_metadata(tmp_path):
    b = create_model("resnet18", num_classes=3, weights="none")
    (tmp_path / "run").mkdir()
    save_model(tmp_path / "run" / "model.pt", b, {"image_size": 48})
    loaded = load_bundle(tmp_path / "run")
    assert loaded.meta["image_size"] == 48 and loaded.head == "fc" and loaded.spec["num_classes"] == 3


def test_custom_architecture_is_passed_in(tmp_path):
    def net():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(2))

    m = net()
    m(torch.randn(1, 3, 8, 8))
    path = save_model(tmp_path / "c.pt", wrap_module(m))
    with pytest.raises(ModelError, match="pass the architecture as model="):
        load_model(path)
    fresh = net()
    fresh(torch.randn(1, 3, 8, 8))
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(load_model(path, model=fresh)(x), m.eval()(x))


def test_pickled_modules_are_refused(tmp_path):
    p = tmp_path / "pickled.pt"
    torch.save(nn.Linear(2, 2), p)
    with pytest.raises(ModelError, match="refuses"):
        load_model(p)


def test_not_a_transtailor_file_and_missing_file(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(nn.Linear(2, 2).state_dict(), p)
    with pytest.raises(ModelError, match="not a TransTailor model file"):
        load_model(p)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")
    (tmp_path / "emptyrun").mkdir()
    with pytest.raises(ModelError, match="holds no model.pt"):
        load_model(tmp_path / "emptyrun")


def test_a_process_killed_mid_write_leaves_the_previous_file_loadable(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    bundle = create_model("resnet18", num_classes=2, weights="none")
    path = save_model(tmp_path / "model.pt", bundle)
    before = load_model(path).state_dict()
    flag = tmp_path / "half-written"
    script = (
        "import sys, time, pathlib\n"
        "from transtailor.runs import atomic_write\n"
        "def write(fh):\n"
        "    fh.write(b'x' * 1_000_000)\n"
        "    fh.flush()\n"
        f"    pathlib.Path({str(flag)!r}).touch()\n"
        "    time.sleep(60)\n"
        f"atomic_write({str(path)!r}, write, binary=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "the writer never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers and all(name.startswith(".model.pt.") for name in leftovers)  # killed mid-write
    after = load_model(path).state_dict()  # the complete previous version
    assert all(torch.equal(before[k], after[k]) for k in before)
