"""The lower-resolution candidate (--resolution): its size, its training from the start model, the choice
between it and the pruned sub-model, its place in the run folder, and resuming."""

import json

import pytest
import torch
import torchvision

from transtailor.cli import main
from transtailor.config import PruneConfig, SearchConfig
from transtailor.errors import ConfigError
from transtailor.methods import search
from transtailor.methods.measuring import measure, timing_setup
from transtailor.methods.resolution import choose_size, largest_reaching, returns_candidate, smaller_sizes
from transtailor.models import load_model
from transtailor.models.measure import count_macs_params
from transtailor.models.serialize import load_bundle
from transtailor.records import IterationRecord

from conftest import TINY


def _rec(loss, top1=50.0):
    return IterationRecord(iteration=1, phase="recover", test_loss=0, test_top1=0, macs=1, params=1, val_top1=top1,
                           val_loss=loss)


def test_candidate_sizes_are_multiples_of_8_below_the_run_size_largest_first():
    assert smaller_sizes(112) == list(range(104, 31, -8))
    assert smaller_sizes(100)[:2] == [96, 88] and smaller_sizes(40) == [32]


def test_the_scan_stops_at_the_largest_size_that_reaches_the_target():
    priced = []

    def price(r):
        priced.append(r)
        return (112 / r) ** 2

    size, tried = largest_reaching(smaller_sizes(112), price, 1.5)
    assert size == 88 and priced == [104, 96, 88]  # 96 px: 1.36x; 88 px: 1.62x; nothing smaller is timed
    assert tried == [(r, (112 / r) ** 2) for r in (104, 96, 88)]
    assert largest_reaching([40, 32], price, 100.0) == (None, [(40, price(40)), (32, price(32))])


def test_auto_prices_sizes_by_macs_for_a_mac_target():
    model = torchvision.models.resnet18(num_classes=3)
    cfg = SearchConfig(target_flops_reduction=0.4, resolution="auto", image_size=64)
    choice = choose_size(cfg, model, 64, None)
    macs = {r: count_macs_params(model, r)[0] for r in (64, *smaller_sizes(64))}
    assert choice.priced_by == "MACs" and choice.size is not None
    assert 1 - macs[choice.size] / macs[64] >= 0.4 > 1 - macs[choice.size + 8] / macs[64]


def test_auto_prices_sizes_by_measured_speed_for_a_speed_target(fake_speed, monkeypatch):
    from transtailor.models import timing

    built = []  # the input size of every runner made: the reference (64 px) once, each size tried once
    runner = timing.make_runner
    monkeypatch.setattr(timing, "make_runner", lambda m, shape, setup: built.append(shape[-1]) or runner(m, shape, setup))
    model = torchvision.models.resnet18(num_classes=3)
    cfg = SearchConfig(target_speedup=1.5, image_size=64)
    assert cfg.resolution_choice() == "auto"
    choice = choose_size(cfg, model, 64, timing_setup(cfg, "cpu"))
    assert sorted(built) == sorted([64] + [r for r, _ in choice.tried]) and len(choice.tried) >= 2
    macs = {r: count_macs_params(model, r)[0] for r in (64, *smaller_sizes(64))}
    speed = {r: macs[64] / macs[r] for r in macs}  # the fake timer's speed-up: the MAC ratio at each own size
    assert choice.priced_by == "measured speed-up"
    assert speed[choice.size] >= 1.5 * 0.98 > speed[choice.size + 8]
    assert [r for r, _ in choice.tried] == [r for r in smaller_sizes(64) if r >= choice.size]


def test_a_model_at_another_size_is_timed_against_the_reference_at_its_own(fake_speed):
    model = torchvision.models.resnet18(num_classes=3)
    cost = measure(model, 48, setup=timing_setup(SearchConfig(), "cpu"), reference=model, rounds=1,
                   reference_size=64)
    assert cost["speedup_batch"] == pytest.approx(count_macs_params(model, 64)[0] / count_macs_params(model, 48)[0])


def test_the_candidate_is_returned_only_on_a_lower_val_loss():
    assert returns_candidate(_rec(0.30, top1=80.0), _rec(0.31, top1=80.0))  # a top-1 tie, told apart by the loss
    assert returns_candidate(_rec(0.30, top1=79.0), _rec(0.31, top1=80.0))  # the loss decides, not top-1
    assert not returns_candidate(_rec(0.31, top1=81.0), _rec(0.30, top1=80.0))
    assert not returns_candidate(_rec(0.30), _rec(0.30))  # a tie keeps the pruned sub-model
    assert not returns_candidate(_rec(None), _rec(0.5))


def test_resolution_defaults_and_bad_values():
    assert SearchConfig().resolution_choice() == "off"
    assert SearchConfig(target_flops_reduction=0.4).resolution_choice() == "off"
    assert SearchConfig(target_speedup=1.5, resolution="off").resolution_choice() == "off"
    assert PruneConfig(target_speedup=1.5).resolution_choice() == "off"  # the baselines prune only when asked
    assert SearchConfig(resolution="96").resolution_size() == 96
    assert PruneConfig(resolution="auto", flops_reduction=0.3).target_flops_reduction_asked() == 0.3
    for cfg, words in [(SearchConfig(resolution="auto"), "give --target-speedup or --target-flops-reduction"),
                       (SearchConfig(resolution="96px"), "'auto', 'off' or a size in px"),
                       (SearchConfig(resolution="112", image_size=112), "below the run's --image-size 112"),
                       (SearchConfig(resolution="8"), "too small"),
                       (SearchConfig(resolution="0", image_size=112), "too small")]:
        with pytest.raises(ConfigError, match=words):
            cfg.validate()


def test_the_candidate_length_defaults_to_half_the_recovery_and_is_recorded():
    assert SearchConfig(target_speedup=1.5).candidate_epochs() == 12  # half of --recover-epochs' 24
    assert SearchConfig(target_speedup=1.5, recover_epochs=7).candidate_epochs() == 4  # rounded up
    assert SearchConfig(target_speedup=1.5, recover_epochs=1).candidate_epochs() == 1
    assert SearchConfig(target_speedup=1.5, recover_epochs=0, ft_epochs=5).candidate_epochs() == 5
    assert SearchConfig(target_speedup=1.5, recover_epochs=8, resolution_epochs=3).candidate_epochs() == 3
    assert SearchConfig(target_speedup=1.5, recover_epochs=8).resolved().resolution_epochs == 4
    assert SearchConfig(target_flops_reduction=0.4).resolved().resolution_epochs is None  # no candidate
    with pytest.raises(ConfigError, match="--resolution-epochs must be at least 1, got 0 .*--resolution off"):
        SearchConfig(resolution="96", resolution_epochs=0).validate()


def test_the_cli_refuses_a_bad_resolution_in_one_line(tiny_folder, tmp_path, capsys):
    assert main(["search", "--data", str(tiny_folder), "--out", str(tmp_path / "o"), "--resolution", "big"]) == 2
    err = capsys.readouterr().err
    assert "--resolution must be 'auto', 'off' or a size in px" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    # without --image-size the run's size is the model's native one, and a size at or above it is refused
    # before any training, not after the steps
    assert main(["search", "--data", str(tiny_folder), "--out", str(tmp_path / "o"), "--resolution", "300"]) == 2
    assert "--resolution 300 must be below the run's --image-size 224" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _candidate_search(data, out, **extra):
    options = dict(TINY, recover_epochs=1, max_iterations=1, stop_rule="none", resolution="24")
    return search(SearchConfig(data=str(data), out=str(out), **{**options, **extra}))


def test_the_candidate_trains_the_start_model_at_its_size_and_the_run_shows_both(tiny_folder, tmp_path):
    out = tmp_path / "r"
    # no learning: the candidate's weights must then be the start model's (iteration 0), not the pruned one's
    res = _candidate_search(tiny_folder, out, lr_head=0.0, lr_backbone=0.0, weight_decay=0.0)
    start = load_model(out / "iter_000" / "model.pt").state_dict()
    saved = load_bundle(out / "resolution" / "model.pt")
    assert saved.meta["image_size"] == 24  # export, evaluate and benchmark feed it 24 px images
    got = dict(saved.model.named_parameters())
    assert all(torch.equal(got[k], start[k]) for k in got)
    summary = json.loads((out / "summary.json").read_text())
    candidate = IterationRecord.from_json(summary["resolution"])
    assert candidate.extra["image_size"] == 24 and candidate.phase == "resolution"
    assert candidate.macs == count_macs_params(saved.model, 24)[0]
    assert candidate.flops_reduction == pytest.approx(1 - candidate.macs / summary["macs_original"])
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["image_size"]) for r in epochs if r.get("phase") == "resolution" and "epoch" in r] == \
        [(1, 24)]
    recovered = IterationRecord.from_json(json.loads((out / "recovered" / "metrics.json").read_text()))
    chosen = "resolution" if returns_candidate(candidate, recovered) else "recovered"
    assert summary.get("returned") == ("resolution" if chosen == "resolution" else None)
    assert (out / "best" / "model.pt").read_bytes() == (out / chosen / "model.pt").read_bytes()
    assert res.summary.best.test_top1 == (candidate if chosen == "resolution" else recovered).test_top1
    assert summary["compute_ft_full_epochs"] == pytest.approx(sum(
        r.compute for r in [*res.iterations, recovered, candidate]))


def test_a_returned_candidate_is_what_the_run_returns_and_reports(tiny_folder, tmp_path, monkeypatch, capsys):
    from transtailor.methods import iterative

    monkeypatch.setattr(iterative, "returns_candidate", lambda candidate, pruned: True)
    out = tmp_path / "r"
    res = _candidate_search(tiny_folder, out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["returned"] == "resolution" and summary["image_size"] == 24
    assert summary["test_top1"] == summary["resolution"]["test_top1"] == res.summary.best.test_top1
    assert (out / "best" / "model.pt").read_bytes() == (out / "resolution" / "model.pt").read_bytes()
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "24px" in table and "returned: FT at 24 px" in table
    assert "validation (3 images): the 24 px model got" in table and "exact McNemar p =" in table
    assert main(["export", str(out), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 0
    assert main(["benchmark", str(out), "--rounds", "1", "--threads", "1"]) == 0
    timed = json.loads((out / "latency.json").read_text())["models"]
    assert [(m["name"], m["image_size"]) for m in timed][-1] == ("resolution", 24)


def test_a_finished_run_keeps_its_candidate_and_trains_another_for_another_size(tiny_folder, tmp_path):
    out = tmp_path / "r"
    _candidate_search(tiny_folder, out)
    first = (out / "resolution" / "model.pt").read_bytes()

    def trained():
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return [json.loads(x)["image_size"] for x in lines if '"phase": "resolution"' in x and '"epoch"' in x]

    search(SearchConfig(resume=str(out), reference=str(out / "iter_000" / "model.pt")))
    assert trained() == [24] and (out / "resolution" / "model.pt").read_bytes() == first  # kept
    search(SearchConfig(resume=str(out), resolution="16"))
    assert trained() == [24, 16] and (out / "resolution_1" / "model.pt").read_bytes() == first
    assert load_bundle(out / "resolution" / "model.pt").meta["image_size"] == 16


def test_the_candidate_trains_without_the_teacher_that_recovers_the_sub_model(tiny_folder, tmp_path):
    from transtailor.training.compute import epochs_equivalent

    out = tmp_path / "r"
    _candidate_search(tiny_folder, out)
    first = (out / "resolution" / "model.pt").read_bytes()
    search(SearchConfig(resume=str(out), distill="start"))  # the recovery trains again, now with FT as teacher
    summary = json.loads((out / "summary.json").read_text())
    candidate = IterationRecord.from_json(summary["resolution"])
    recovered = IterationRecord.from_json(json.loads((out / "recovered" / "metrics.json").read_text()))
    macs0 = summary["macs_original"]
    assert (out / "recovered_1").is_dir() and recovered.compute > epochs_equivalent(1, recovered.macs, macs0)
    assert (out / "resolution" / "model.pt").read_bytes() == first and not (out / "resolution_1").exists()
    assert candidate.compute == pytest.approx(epochs_equivalent(1, candidate.macs, macs0))


def test_compare_rows_are_each_methods_own_sub_model(tmp_path):
    from transtailor.config import CompareConfig
    from transtailor.methods.compare import run_config

    row = run_config(CompareConfig(cost="latency"), "transtailor", 1.5, 0, tmp_path / "row")
    assert isinstance(row, SearchConfig) and row.target_speedup == 1.5 and row.resolution_choice() == "off"


def test_without_a_recovery_the_candidate_trains_as_long_as_the_start_model(tiny_folder, tmp_path):
    out = tmp_path / "r"
    _candidate_search(tiny_folder, out, recover_epochs=0, ft_epochs=2)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r.get("phase") == "resolution" and "epoch" in r] == [1, 2]
    assert not (out / "recovered").exists()


def test_the_paired_test_counts_each_models_own_hits_and_matches_the_binomial_tail():
    from transtailor.reporting.paired import discordant, mcnemar_p
    from transtailor.training.predictions import Predictions

    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    a = Predictions(labels, torch.tensor([0, 1, 2, 1, 1, 0, 0]), torch.zeros(7))  # wrong on images 3, 5
    b = Predictions(labels, torch.tensor([0, 0, 2, 0, 0, 2, 1]), torch.zeros(7))  # wrong on images 1, 4, 6
    assert discordant(a, b) == (3, 2) and discordant(b, a) == (2, 3)
    assert mcnemar_p(0, 5) == pytest.approx(2 / 32) and mcnemar_p(8, 2) == pytest.approx(2 * 56 / 1024)
    assert mcnemar_p(3, 3) == 1.0 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(40, 10) < 0.001 < mcnemar_p(12, 8)


def test_the_candidate_trains_resolution_epochs_and_a_finished_run_retrains_it_for_another(tiny_folder, tmp_path):
    out = tmp_path / "r"
    _candidate_search(tiny_folder, out, resolution_epochs=2)  # the recovery trains 1

    def trained(phase):
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["epoch"] for r in lines if r.get("phase") == phase and "epoch" in r]

    assert trained("resolution") == [1, 2] and trained("recover") == [1]
    first = (out / "resolution" / "model.pt").read_bytes()
    search(SearchConfig(resume=str(out), resolution_epochs=1))
    assert trained("resolution") == [1, 2, 1] and trained("recover") == [1]  # the recovery is kept
    assert (out / "resolution_1" / "model.pt").read_bytes() == first
    assert "resolution_epochs: 1" in (out / "config.yaml").read_text()


def test_a_run_written_before_resolution_epochs_keeps_its_candidate_length(tmp_path):
    import dataclasses

    import yaml

    from transtailor.methods.checkpoints import Checkpoints

    config = dataclasses.asdict(SearchConfig(data="x", target_speedup=1.5, recover_epochs=8).resolved())
    del config["resolution_epochs"]  # as a run folder written before the option was: its candidate trained 8
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"command": "search", **config}))
    resumed = Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(tmp_path)))
    assert resumed.candidate_epochs() == 8  # not half: a finished run keeps the candidate it trained
