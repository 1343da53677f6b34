"""Transfer regularisers: L2-SP and DELTA penalties, channel attention, and the finetune/search wiring."""

import json
import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from transtailor.config import FinetuneConfig, SearchConfig
from transtailor.methods import finetune, search
from transtailor.models import create_model
from transtailor.pruning import find_gate_sites
from transtailor.training import set_train_mode
from transtailor.training.regularizers import channel_attention, make_regularizer, stage_outputs

from conftest import TINY, TINY_TRAIN


def _bundle():
    torch.manual_seed(0)
    return create_model("resnet18", num_classes=3, weights="none")


def test_l2sp_is_zero_at_the_start_and_grows_with_the_distance():
    b = _bundle()
    reg = make_regularizer("l2sp", b.model, b.head, beta=0.0)
    assert reg(b.model).item() == 0.0
    w = b.model.layer1[0].conv1.weight
    step = torch.randn_like(w)
    with torch.no_grad():
        w.add_(step)
    one = reg(b.model).item()
    with torch.no_grad():
        w.add_(step)
    assert one == pytest.approx(0.5 * 0.01 * step.pow(2).sum().item(), rel=1e-4)
    assert reg(b.model).item() == pytest.approx(4 * one, rel=1e-4)  # quadratic in the distance


def test_l2sp_head_term_is_plain_l2():
    b = _bundle()
    reg = make_regularizer("l2sp", b.model, b.head, alpha=0.0, beta=0.1)
    head = sum(p.pow(2).sum() for p in b.model.fc.parameters())
    assert reg(b.model).item() == pytest.approx(0.05 * head.item(), rel=1e-5)


def test_delta_is_zero_for_identical_maps_and_positive_after_a_change():
    b = _bundle()
    sites = find_gate_sites(b.model, 32, exclude=(b.head,))
    layers = stage_outputs(b.model, [s.module for s in sites], 32)
    assert layers == ["bn1", "layer1.1.bn2", "layer2.1.bn2", "layer3.1.bn2", "layer4.1.bn2"]  # stem, stages
    attention = {n: torch.full((b.model.get_submodule(n).num_features,), 1.0 / b.model.get_submodule(n).num_features)
                 for n in layers}
    reg = make_regularizer("delta", b.model, b.head, beta=0.0, layers=layers, attention=attention)
    x = torch.randn(4, 3, 32, 32)
    set_train_mode(b.model)  # BatchNorm in training mode on both sides: same batch statistics
    b.model(x)
    assert reg(b.model).item() == 0.0
    with torch.no_grad():
        b.model.layer3[0].conv1.weight.mul_(1.5)
    b.model(x)
    penalty = reg(b.model)
    assert penalty.item() > 0 and penalty.requires_grad
    b.model.eval()
    b.model(x)  # evaluation passes store nothing and do not run the source model
    assert not reg.target_maps and not reg.source_maps
    reg.remove()
    assert not b.model._forward_pre_hooks


def test_channel_attention_is_a_distribution_that_follows_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 2))
    with torch.no_grad():  # the classifier reads channel 4 only, and that channel fires
        model[5].weight.zero_()
        model[5].weight[0, 4] = 3.0
        model[1].bias[4] = 2.0
    x, y = torch.randn(16, 3, 12, 12), torch.zeros(16, dtype=torch.long)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    a = channel_attention(model, ["1"], loader, torch.device("cpu"), images=16)["1"]
    assert a.shape == (6,) and (a > 0).all()
    assert a.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert a.argmax().item() == 4 and a[4] > 5 * a[torch.arange(6) != 4].max()


def _attention_reference(model, layer, x, y):
    """DELTA's loss increase per zeroed channel, the plain way: one full pass per channel."""
    model.eval()
    with torch.no_grad():
        base = torch.nn.functional.cross_entropy(model(x), y)
        module, rises = model.get_submodule(layer), []
        for c in range(_width(model, module, x)):
            h = module.register_forward_hook(lambda m, i, o, c=c: o.index_fill(1, torch.tensor([c]), 0))
            rises.append(torch.nn.functional.cross_entropy(model(x), y) - base)
            h.remove()
    r = torch.stack(rises)
    return torch.softmax((r - r.mean()) / r.std(), 0)


def _width(model, module, x):
    w = []
    h = module.register_forward_hook(lambda m, i, o: w.append(o.shape[1]))
    model(x[:1])
    h.remove()
    return w[0]


def test_channel_attention_batched_over_channels_matches_one_pass_per_channel(caplog):
    """Inside residual blocks (the identity comes from before the layer), 5 copies per pass."""
    caplog.set_level("INFO", logger="transtailor")
    b = _bundle()
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    layers = ["layer1.0.bn2", "layer3.1.bn1"]
    got = channel_attention(b.model, layers, loader, torch.device("cpu"), images=6, elements=5 * 64 * 8 * 8)
    for layer in layers:
        want = _attention_reference(b.model, layer, x, y)
        assert torch.allclose(got[layer], want, atol=1e-5), layer
    assert "one pass per channel" not in caplog.text  # the batched path did it


class _Concat(torch.nn.Module):
    """Concatenates a tensor from before the scored layer: copies cannot be batched after it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        a = self.a(x)
        return self.fc(torch.cat([a, self.b(a)], 1).mean((2, 3)))


def test_channel_attention_falls_back_to_one_pass_per_channel_where_copies_cannot_be_batched(caplog):
    caplog.set_level("INFO", logger="transtailor")
    torch.manual_seed(0)
    model = _Concat()
    x, y = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    got = channel_attention(model, ["b"], DataLoader(TensorDataset(x, y), batch_size=5), torch.device("cpu"),
                            images=5)["b"]
    assert torch.allclose(got, _attention_reference(model, "b", x, y), atol=1e-5)
    assert "delta attention b: one pass per channel" in caplog.text


@pytest.mark.parametrize("name", ["l2", "l2sp", "delta"])
def test_finetune_full_with_each_regularizer(name, tiny_folder, tmp_path):
    res = finetune(FinetuneConfig(data=str(tiny_folder), out=str(tmp_path / name), mode="full", regularizer=name,
                                  delta_images=2, **TINY_TRAIN))
    phases = [json.loads(line)["phase"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert ("delta_head" in phases) == (name == "delta")  # DELTA first fits a head for its attention
    # the summary scores the model the run saved (re-evaluated from its file)
    from transtailor.config import EvaluateConfig
    from transtailor.methods.evaluate import evaluate_saved

    again = evaluate_saved(EvaluateConfig(model_path=str(tmp_path / name), data=str(tiny_folder), image_size=32,
                                          batch_size=8, workers=0, threads=1))
    assert again["test_top1"] == pytest.approx(res.summary.test_top1)
    cfg = (tmp_path / name / "config.yaml").read_text()
    assert f"regularizer: {name}" in cfg


def test_search_fine_tunes_with_the_regularizer(tiny_folder, tmp_path, monkeypatch):
    ft = sys.modules["transtailor.methods.finetune"]  # the module, not the function of that name
    made = []
    real = ft.make_regularizer
    monkeypatch.setattr(ft, "make_regularizer", lambda name, *a, **k: made.append(name) or real(name, *a, **k))
    search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "s"), regularizer="l2sp", max_iterations=1,
                        **TINY))
    assert made == ["l2sp"]  # the pruned model's fine-tuning, not the FT (head) phase
