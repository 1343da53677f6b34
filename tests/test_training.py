import json

import pytest
import torch

from transtailor.config import FinetuneConfig
from transtailor.methods import finetune
from transtailor.models import load_model
from transtailor.runs import RunDir
from transtailor.training import TrainingDiverged


def _cfg(data, out, **kw):
    base = dict(model="resnet18", weights="none", data=str(data), image_size=32, batch_size=8, epochs=1,
                workers=0, out=str(out), lr_head=0.05, lr_backbone=0.01, latency=False)
    base.update(kw)
    return FinetuneConfig(**base)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_ft_trains_only_the_head_and_keeps_bn_statistics(tiny_folder, tmp_path):
    from transtailor.models import create_model
    from transtailor.training import seed_everything

    seed_everything(0)
    start = create_model("resnet18", num_classes=3, weights="none").model
    res = finetune(_cfg(tiny_folder, tmp_path / "ft", mode="head", epochs=2), model=start)
    after = res.model.state_dict()
    # start was trained in place; compare with a fresh model of the same seed
    seed_everything(0)
    ref = create_model("resnet18", num_classes=3, weights="none").model.state_dict()
    body = [k for k in ref if not k.startswith("fc.")]
    assert all(torch.equal(ref[k], after[k].cpu()) for k in body)  # weights *and* running stats
    assert not torch.equal(ref["fc.weight"], after["fc.weight"].cpu())


def test_ft_full_changes_the_backbone(tiny_folder, tmp_path):
    from transtailor.models import create_model
    from transtailor.training import seed_everything

    seed_everything(0)
    ref = create_model("resnet18", num_classes=3, weights="none").model
    before = _snapshot(ref)
    res = finetune(_cfg(tiny_folder, tmp_path / "full", mode="full"), model=ref)
    assert not torch.equal(before["conv1.weight"], res.model.conv1.weight.detach())
    assert not torch.equal(before["bn1.running_mean"], res.model.bn1.running_mean)


def test_same_seed_same_result_and_run_folder_contents(tiny_folder, tmp_path):
    a = finetune(_cfg(tiny_folder, tmp_path / "a", epochs=2, seed=3, latency=True))
    b = finetune(_cfg(tiny_folder, tmp_path / "b", epochs=2, seed=3))
    for k in ("val_top1", "test_top1", "test_loss"):
        assert getattr(a.summary, k) == getattr(b.summary, k)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    run = RunDir(tmp_path / "a")
    records = list(run.metrics())
    assert [r["phase"] for r in records] == ["ft_full", "ft_full", "ft_full_final"]
    assert run.read_config()["seed"] == 3 and run.read_config()["image_size"] == 32
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert saved == a.summary.to_json()
    for key in ("val_top1", "test_top1", "macs", "params", "latency_ms_b1", "latency_ms_batch", "wall_seconds"):
        assert key in saved
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(load_model(tmp_path / "a")(x), a.model.eval()(x))


def test_with_epoch_choice_top1_the_best_validation_epoch_is_kept(tiny_folder, tmp_path):
    res = finetune(_cfg(tiny_folder, tmp_path / "r", epochs=4, lr_head=0.5, lr_backbone=0.2, schedule="constant",
                        epoch_choice="top1"))
    history = [r for r in RunDir(tmp_path / "r").metrics() if r.get("epoch")]
    best = max(r["val_top1"] for r in history)
    assert res.summary.best_epoch == next(r["epoch"] for r in history if r["val_top1"] == best)
    assert res.summary.val_top1 == pytest.approx(best)


def test_a_diverging_loss_stops_with_a_clear_error(tiny_folder, tmp_path):
    with pytest.raises(TrainingDiverged, match="lower the learning rates"):
        finetune(_cfg(tiny_folder, tmp_path / "nan", lr_head=1e30, lr_backbone=1e30, epochs=2))


def test_a_warm_up_rises_linearly_then_the_schedule_runs_over_the_remaining_steps():
    import math

    from transtailor.training import make_schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_schedule(opt, "cosine", total_steps=10, warmup_steps=4)
    rates = []
    for _ in range(10):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert rates == pytest.approx(expected)
    plain = make_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), "cosine", 10)
    assert plain.get_last_lr() == [1.0]  # no warm-up: the first step at the full rate
