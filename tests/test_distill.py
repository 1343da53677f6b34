"""--distill: the sub-model's fine-tuning also matches a teacher's soft outputs."""

import copy

import pytest
import torch
import torch.nn.functional as F

from transtailor.config import SearchConfig
from transtailor.errors import ConfigError
from transtailor.methods import search
from transtailor.models import create_model
from transtailor.training.distill import Distiller

TINY = dict(model="resnet18", weights="none", image_size=32, batch_size=8, workers=0, epochs=1, latency=False,
            threads=1, max_iterations=1, cache=True)


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


def test_search_with_distillation_changes_the_fine_tuning(tiny_folder, tmp_path):
    plain = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "plain"), **TINY))
    taught = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "taught"), distill="previous", **TINY))
    assert len(plain.iterations) == len(taught.iterations) == 2
    assert plain.iterations[1]["macs"] == taught.iterations[1]["macs"]  # the same pruning: distillation acts
    wa = dict(plain.model.named_parameters())["conv1.weight"]
    wb = dict(taught.model.named_parameters())["conv1.weight"]
    assert not torch.allclose(wa, wb)  # only during the fine-tuning, whose outcome it changes


def test_a_teacher_for_other_classes_is_refused(tiny_folder, tmp_path):
    from conftest import write_folder

    other = write_folder(tmp_path / "other", {"x": 6, "y": 6}, "train")
    write_folder(other, {"x": 2, "y": 2}, "test", seed=1)
    teacher = search(SearchConfig(data=str(other), out=str(tmp_path / "teacher"), **TINY))
    with pytest.raises(ConfigError, match="2 classes"):
        search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "student"), distill=str(teacher.run_dir),
                            **TINY))
    with pytest.raises(ConfigError, match="no such model"):
        SearchConfig(data=str(tiny_folder), distill=str(tmp_path / "missing"), **TINY).validate()
