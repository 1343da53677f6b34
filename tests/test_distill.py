"""--distill: the sub-model's fine-tuning also matches a teacher's soft outputs."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from transtailor.config import SearchConfig
from transtailor.errors import ConfigError
from transtailor.methods import search
from transtailor.models import create_model
from transtailor.training.distill import Distiller
from transtailor.training.loop import train_epoch

from conftest import TINY as _TINY

TINY = dict(_TINY, max_iterations=1, cache=True)


def test_the_distillation_term_vanishes_when_student_and_teacher_agree():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, weights="none").model.eval()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    same = Distiller(copy.deepcopy(model), weight=0.5, temperature=4.0)
    assert torch.allclose(same(logits, y, x), 0.5 * ce, atol=1e-5)  # KL(p || p) = 0
    other = create_model("resnet18", num_classes=3, weights="none").model
    assert Distiller(other, 0.5, 4.0)(logits, y, x) > 0.5 * ce + 1e-4
    assert torch.allclose(Distiller(other, 0.0, 4.0)(logits, y, x), ce)


def test_the_distillation_loss_is_its_formula():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x, y, s = torch.randn(5, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0]), torch.randn(5, 4)
    w, t = 0.3, 2.5
    pt = torch.exp(teacher(x) / t) / torch.exp(teacher(x) / t).sum(1, keepdim=True)
    log_ps = s / t - torch.log(torch.exp(s / t).sum(1, keepdim=True))
    kl = (pt * (torch.log(pt) - log_ps)).sum() / len(x)
    ce = -(s - torch.log(torch.exp(s).sum(1, keepdim=True)))[torch.arange(5), y].mean()
    torch.testing.assert_close(Distiller(teacher, w, t)(s, y, x), ((1 - w) * ce + w * t * t * kl).detach())


def test_label_smoothing_is_its_formula_in_training_and_in_the_distillation_mix():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x, y, eps = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1]), 0.2
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), 1)
    # the target keeps 1 - eps on its class and spreads eps evenly over all 4 classes
    target = torch.full((6, 4), eps / 4) + (1 - eps) * F.one_hot(y, 4)
    smoothed = -(target * log_p).sum(1).mean()
    loader = DataLoader(TensorDataset(x, y), batch_size=6)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    trained = train_epoch(model, loader, opt, torch.device("cpu"), label_smoothing=eps)
    assert trained["train_loss"] == pytest.approx(smoothed.item(), rel=1e-5)
    plain = train_epoch(model, loader, opt, torch.device("cpu"))["train_loss"]
    assert plain == pytest.approx(F.nll_loss(log_p, y).item(), rel=1e-5) and plain != pytest.approx(smoothed.item())
    mix = Distiller(model, weight=0.0, temperature=4.0, label_smoothing=eps)  # weight 0: its cross-entropy alone
    assert mix(model(x), y, x).item() == pytest.approx(smoothed.item(), rel=1e-5)


def test_search_distillation_acts_on_the_fine_tuning_by_its_weight(tiny_folder, tmp_path):
    plain = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "plain"), **TINY))
    zero = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "zero"), distill="previous",
                               distill_in="all", distill_weight=0.0, **TINY))
    taught = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "taught"), distill="previous",
                                 distill_in="all", **TINY))
    assert len(plain.iterations) == len(taught.iterations) == 2
    assert plain.iterations[1].macs == taught.iterations[1].macs  # the same pruning: distillation acts
    w = {k: dict(r.model.named_parameters())["conv1.weight"] for k, r in
         (("plain", plain), ("zero", zero), ("taught", taught))}
    torch.testing.assert_close(w["zero"], w["plain"])  # weight 0 is plain cross-entropy, step for step
    assert not torch.allclose(w["taught"], w["plain"])  # only during the fine-tuning, whose outcome it changes


def test_a_teacher_for_other_classes_is_refused(tiny_folder, tmp_path):
    from conftest import write_folder

    other = write_folder(tmp_path / "other", {"x": 6, "y": 6}, "train")
    write_folder(other, {"x": 2, "y": 2}, "test", seed=1)
    teacher = search(SearchConfig(data=str(other), out=str(tmp_path / "teacher"), **TINY))
    with pytest.raises(ConfigError, match="2 classes"):
        search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "student"), distill=str(teacher.run_dir),
                            distill_in="all", **TINY))
    with pytest.raises(ConfigError, match="no such model"):
        SearchConfig(data=str(tiny_folder), distill=str(tmp_path / "missing"), **TINY).validate()
