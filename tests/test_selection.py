"""Selections on the validation split: the epoch each phase keeps, the saved per-image predictions
behind every selection, and the stop rules replayed from them."""

import json

import pytest
import torch

from transtailor.config import FinetuneConfig, SearchConfig
from transtailor.data import build_data
from transtailor.methods import search
from transtailor.methods.setup import _warn_small_validation
from transtailor.methods.stopping import StopRule
from transtailor.models import create_model, load_model
from transtailor.models.heads import replace_head
from transtailor.training import fit, make_sgd
from transtailor.training.loop import predict
from transtailor.training.predictions import Evaluated

from conftest import TINY as _TINY

TINY = dict(_TINY, epochs=2)


def _fit(tiny_folder, choice):
    torch.manual_seed(0)
    data = build_data(str(tiny_folder), image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, batch_size=8,
                      val_fraction=0.3, seed=0, workers=0)
    bundle = create_model("resnet18", weights="none")
    replace_head(bundle.model, data.num_classes)
    opt = make_sgd([{"params": bundle.model.parameters(), "lr": 0.05}], 0.9, 0.0)
    res = fit(bundle.model, data.train_loader, data.val_loader, opt, torch.device("cpu"), epochs=4,
              epoch_choice=choice)
    return res, predict(bundle.model, data.val_loader, torch.device("cpu"))


@pytest.mark.parametrize("choice", ["last", "top1", "loss"])
def test_the_kept_epoch_is_the_chosen_one_and_its_weights_are_restored(tiny_folder, choice):
    res, after = _fit(tiny_folder, choice)
    top1 = {e: p.metrics()["top1"] for e, p in res.val_predictions.items()}
    loss = {e: p.metrics()["loss"] for e, p in res.val_predictions.items()}
    expected = {"last": 4, "top1": min(e for e in top1 if top1[e] == max(top1.values())),
                "loss": min(loss, key=loss.get)}[choice]
    assert res.best_epoch == expected
    # the model left behind predicts what the kept epoch predicted, image by image
    kept = res.val_predictions[expected]
    assert torch.equal(after.predicted, kept.predicted)
    assert torch.allclose(after.loss, kept.loss, atol=1e-5)


def test_predictions_are_saved_and_every_selection_can_be_recomputed_from_them(tiny_folder, tmp_path):
    res = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "r"), max_iterations=2, stop_rule="none",
                              epoch_choice="loss", **TINY))
    metrics = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    for rec in res.iterations:
        saved = Evaluated.from_json(json.loads((res.run_dir / f"iter_{rec.iteration:03d}" /
                                                "predictions.json").read_text()))
        # the recorded scores are the saved predictions' scores
        assert saved.val.metrics()["top1"] == pytest.approx(rec.val_top1)
        assert saved.val.metrics()["loss"] == pytest.approx(rec.val_loss, abs=1e-5)
        assert saved.test.metrics()["top1"] == pytest.approx(rec.test_top1)
        # each epoch's logged val top-1 is its saved predictions', and the kept epoch is the lowest loss
        epochs = {m["epoch"]: m for m in metrics if m.get("iteration") == rec.iteration and "epoch" in m
                  and "val_top1" in m and m.get("phase") in ("ft", f"finetune{rec.iteration}")}
        assert set(epochs) == set(saved.val_epochs) == {1, 2}
        for e, p in saved.val_epochs.items():
            assert p.metrics()["top1"] == pytest.approx(epochs[e]["val_top1"])
        losses = {e: p.metrics()["loss"] for e, p in saved.val_epochs.items()}
        assert saved.kept_epoch == rec.best_epoch == min(losses, key=losses.get)
    # the stop rule, replayed on the saved records, decides as a run with that rule would
    rule = StopRule("loss", loss_tolerance=0.0)
    its = res.iterations
    replayed = next((k - 1 for k in range(1, len(its)) if rule.check(its[:k], its[k]).stop), len(its) - 1)
    stopped = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "s"), max_iterations=2,
                                  stop_rule="loss", loss_tolerance=0.0, epoch_choice="loss", **TINY))
    assert stopped.summary.best_iteration == replayed
    assert [r.val_loss for r in stopped.iterations] == pytest.approx([r.val_loss for r in its[:len(stopped.iterations)]])
    # the model returned is the replayed iteration's: its size, and the uncut run's model of that iteration
    assert sum(p.numel() for p in stopped.model.parameters()) == its[replayed].params
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(stopped.model.eval()(x), load_model(res.run_dir / f"iter_{replayed:03d}" / "model.pt")(x))


def test_a_small_validation_split_is_warned_about(tiny_folder, tmp_path, caplog):
    search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "r"), max_iterations=1, **TINY))
    assert any("the validation split has" in r.getMessage() and "per class" in r.getMessage() for r in caplog.records)


def test_the_small_validation_warning_names_the_selections_this_run_makes(tiny_folder, caplog):
    data = build_data(str(tiny_folder), image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, batch_size=8,
                      val_fraction=0.3, seed=0, workers=0)

    def warning(cfg):
        caplog.clear()
        _warn_small_validation(data, cfg)
        (record,) = [r for r in caplog.records if "the validation split has" in r.getMessage()]
        return record.getMessage()

    finetune = warning(FinetuneConfig(epoch_choice="top1"))
    assert "--epoch-choice top1) selects on it" in finetune and "stop rule" not in finetune
    # no target: the loss rule decides where the search ends
    assert "(--epoch-choice last) and the stop rule (--stop-rule loss) are made for this" in warning(SearchConfig())
    with_target = warning(SearchConfig(target_flops_reduction=0.3))  # the target decides: no stop rule to name
    assert "stop rule" not in with_target and "--epoch-choice last) is made for this" in with_target
