"""Pruning baselines on the shared loop: budget, steps, criteria, bad input."""

import json

import pytest
import torch

from transtailor.cli import main
from transtailor.config import PruneConfig
from transtailor.methods import prune
from transtailor.models import create_model
from transtailor.pruning import find_gate_sites
from transtailor.pruning.criteria import l1_scores, per_layer

TINY = dict(model="resnet18", weights="none", image_size=32, batch_size=8, workers=0, epochs=1, latency=False,
            threads=1)


@pytest.mark.parametrize("method", ["l1", "taylor", "random"])
def test_each_criterion_meets_the_budget(method, tiny_folder, tmp_path):
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / method), method=method, flops_reduction=0.2,
                            **TINY))
    assert res.summary["method"] == method and res.summary["iterations"] == 1
    assert 0.18 <= res.summary["flops_reduction"] <= 0.22
    assert res.summary["stopped"] == "target_flops_reduction"


def test_steps_reach_the_budget_exactly(tiny_folder, tmp_path):
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "r"), method="l1", flops_reduction=0.25,
                            flops_step=0.1, **TINY))
    reductions = [r["flops_reduction"] for r in res.iterations]
    assert len(reductions) == 4  # FT, then 10 %, 20 % and the last 5 %
    assert reductions[1] == pytest.approx(0.1, abs=0.01) and reductions[2] == pytest.approx(0.2, abs=0.01)
    assert reductions[3] == pytest.approx(0.25, abs=0.02)


def test_random_is_seeded(tiny_folder, tmp_path):
    widths = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / name), method="random", flops_reduction=0.2,
                          **{**TINY, "seed": seed}))
        widths.append(json.loads((tmp_path / name / "iter_001" / "pruning.json").read_text())["remaining"])
    assert widths[0] == widths[1] != widths[2]


def test_l1_scores_are_filter_norms():
    b = create_model("resnet18", num_classes=3, weights="none")
    sites = find_gate_sites(b.model, 32, exclude=("fc",))
    scores = l1_scores(b.model, sites)
    w = b.model.layer1[0].conv1.weight
    torch.testing.assert_close(scores["layer1.0.bn1"], w.abs().sum(dim=(1, 2, 3)))
    scaled = per_layer(scores)
    assert all(v.mean().item() == pytest.approx(1.0) for v in scaled.values())


@pytest.mark.parametrize("args, words", [
    (["--method", "magnitude"], "invalid choice"),
    (["--flops-reduction", "1"], "--flops-reduction must be in (0, 1)"),
    (["--flops-reduction", "0"], "--flops-reduction must be in (0, 1)"),
    (["--flops-reduction", "-0.2"], "--flops-reduction must be in (0, 1)"),
])
def test_bad_input(args, words, capsys):
    try:
        code = main(["prune", *args])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0]
