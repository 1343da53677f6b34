"""Where pruning starts (--start ft|ft-full), which teacher it distils from (--distill start|previous|FILE), the
reference row it is judged against and the compute every run records."""

import json

import pytest
import torch
import yaml

from transtailor.cli import main
from transtailor.config import EvaluateConfig, SearchConfig, resolve
from transtailor.errors import ConfigError
from transtailor.methods import search
from transtailor.methods.evaluate import evaluate_saved
from transtailor.models import load_model
from transtailor.records import IterationRecord
from transtailor.reporting.tables import search_table
from transtailor.training.compute import epochs_equivalent

from conftest import TINY, TINY_TRAIN


def _iterations(out):
    return [IterationRecord.from_json(r) for r in json.loads((out / "iterations.json").read_text())]


def _ft_full(data, out):
    """A 'finetune --mode full' run from the command line: the FT-Full a user would have."""
    assert main(["finetune", "--mode", "full", "--data", str(data), "--model", "resnet18", "--weights", "none",
                 "--image-size", "32", "--batch-size", "8", "--workers", "0", "--epochs", "1", "--no-latency",
                 "--threads", "1", "--out", str(out)]) == 0


def _reference_against_evaluate(res, data, saved, name):
    """The run's reference row is ``saved`` scored on the run's splits, as 'evaluate' scores it."""
    scored = evaluate_saved(EvaluateConfig(data=str(data), model_path=str(saved), workers=0))
    ref = res.summary.reference
    assert ref is not None and ref.name == name
    assert ref.test_top1 == pytest.approx(scored["test_top1"]) and ref.val_top1 == pytest.approx(scored["val_top1"])


def _backbone_weight(path):
    return load_model(path).state_dict()["conv1.weight"]


def test_epochs_equivalent_counts_forward_as_a_third_of_a_step():
    # a quarter-width model for 6 epochs with the unpruned model as teacher: 6 * (1/4 + 1/3)
    assert epochs_equivalent(6, 25, 100, teacher_macs=100) == pytest.approx(6 * (0.25 + 1 / 3))
    assert epochs_equivalent(3, 100, 100, mode="head") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        epochs_equivalent(1, 1, 1, mode="half")


def test_start_ft_full_trains_every_layer_and_is_the_reference(tiny_folder, tmp_path):
    runs = {}
    for start in ("ft", "ft-full"):
        out = tmp_path / start
        res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none",
                                  start=start, ft_epochs=1, **TINY))  # FT-Full's default is 24
        runs[start] = (out, res)
    (ft_out, ft_res), (full_out, full_res) = runs["ft"], runs["ft-full"]
    # same seed, same initial weights: FT leaves the backbone as it was, FT-Full trains it
    assert not torch.equal(_backbone_weight(ft_out / "iter_000" / "model.pt"),
                           _backbone_weight(full_out / "iter_000" / "model.pt"))
    assert [r.phase for r in _iterations(full_out)][0] == "ft_full"
    start = _iterations(full_out)[0]
    ref = full_res.summary.reference
    assert ref is not None and ref.test_top1 == start.test_top1 and ref.macs == start.macs
    assert ref.name == "FT-Full (iteration 0, 1 epoch)"  # how long it trained: is it converged?
    assert ft_res.summary.reference is None  # FT is no one's reference
    # the start's compute: one epoch of the whole network, against a third of one for the head alone
    assert start.compute == pytest.approx(1.0) and _iterations(ft_out)[0].compute == pytest.approx(1 / 3)


@pytest.mark.parametrize("teacher,scope", [("start", "all"), ("previous", "all"), ("start", "recovery")])
def test_compute_is_the_sum_of_each_phase_at_its_width(tiny_folder, tmp_path, teacher, scope):
    """Each step scores the model before it (one Taylor pass), fine-tunes the pruned one and, distilling in the
    steps (--distill-in all), runs the teacher forward: the start model's width with 'start', the previous
    step's with 'previous'; the recovery trains the returned width with the start model as teacher."""
    out = tmp_path / "r"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=2, stop_rule="none",
                              distill=teacher, distill_in=scope, finetune_epochs=1, **dict(TINY, recover_epochs=2)))
    its = _iterations(out)
    m0 = its[0].macs
    expected = [1 / 3]  # FT: one head-only epoch
    for prev, cur in zip(its, its[1:]):
        t = 0 if scope == "recovery" else m0 if teacher == "start" else prev.macs
        expected.append(prev.macs / m0 + cur.macs / m0 + t / m0 / 3)
    assert [r.compute for r in its] == pytest.approx(expected)
    returned = its[res.summary.best_iteration].macs
    recovery = 2 * (returned / m0 + 1 / 3)
    assert res.summary.compute_ft_full_epochs == pytest.approx(sum(expected) + recovery)
    assert json.loads((out / "summary.json").read_text())["compute_ft_full_epochs"] == pytest.approx(
        sum(expected) + recovery)


def test_a_saved_teacher_is_scored_as_the_reference_row(tiny_folder, tmp_path, capsys):
    teacher_run = tmp_path / "full"
    _ft_full(tiny_folder, teacher_run)
    assert json.loads((teacher_run / "summary.json").read_text())["compute_ft_full_epochs"] == pytest.approx(1.0)
    out = tmp_path / "r"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none",
                              distill=str(teacher_run), distill_in="all", **TINY))
    _reference_against_evaluate(res, tiny_folder, teacher_run, f"teacher {teacher_run}")
    capsys.readouterr()
    assert main(["report", str(out)]) == 0  # the report reads the new summary back


def test_start_and_distill_refuse_what_they_cannot_use(tiny_folder, tmp_path, capsys):
    with pytest.raises(ConfigError, match="'start'"):
        SearchConfig(data=str(tiny_folder), distill="nowhere.pt", **TINY).validate()
    with pytest.raises(SystemExit) as exited:
        main(["search", "--data", str(tiny_folder), "--start", "full", "--out", str(tmp_path / "r")])
    assert exited.value.code == 2
    assert "--start" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_ft_full_teaches_the_recovery_by_default_and_leaves_the_steps_as_they_were(tiny_folder, tmp_path):
    """With an FT-Full start and a recovery, FT-Full is the recovery's teacher unless --distill says otherwise;
    the steps train as without a teacher, weight for weight."""
    runs = {}
    for name, distill in (("default", None), ("none", "none")):
        out = tmp_path / name
        res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none",
                                  start="ft-full", ft_epochs=1, distill=distill, **dict(TINY, recover_epochs=1)))
        runs[name] = (out, res)
    (out, res), (plain_out, plain) = runs["default"], runs["none"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["distill"], config["distill_in"]) == ("start", "recovery")  # recorded as what it was
    assert yaml.safe_load((plain_out / "config.yaml").read_text())["distill"] == "none"
    assert (out / "iter_001" / "model.pt").read_bytes() == (plain_out / "iter_001" / "model.pt").read_bytes()
    assert [r.compute for r in _iterations(out)] == [r.compute for r in _iterations(plain_out)]
    recovered = json.loads((out / "recovered" / "metrics.json").read_text())
    assert recovered["recovery"]["distill"] == "start"
    macs0, macs = res.summary.macs_original, recovered["macs"]
    assert recovered["compute"] == pytest.approx(epochs_equivalent(1, macs, macs0, teacher_macs=macs0))
    assert (out / "recovered" / "model.pt").read_bytes() != (plain_out / "recovered" / "model.pt").read_bytes()
    assert "after --recover-epochs, teacher FT-Full, returned" in search_table(out)  # the user is told
    assert "after --recover-epochs, returned" in search_table(plain_out)
    # no FT-Full start, or no recovery: no teacher unless asked for
    assert SearchConfig(data="x", start="ft").resolved().distill == "none"
    assert SearchConfig(data="x", start="ft-full", recover_epochs=0).resolved().distill == "none"
    assert SearchConfig(data="x", target_speedup=1.5).resolved().distill == "start"
    with pytest.raises(ConfigError, match="--recover-epochs 0 trains none"):
        SearchConfig(data="x", distill="start", recover_epochs=0).validate()
    SearchConfig(data="x", distill="start", distill_in="all", recover_epochs=0).validate()  # the steps' teacher


def test_a_run_written_before_distill_in_resumes_with_its_teacher_in_every_step(tiny_folder, tmp_path):
    from transtailor.methods.checkpoints import Checkpoints

    out = tmp_path / "r"
    search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none", distill="start",
                        distill_in="all", **TINY))
    config = yaml.safe_load((out / "config.yaml").read_text())
    del config["distill_in"]  # as a run folder written before the option was
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    assert Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(out))).distill_in == "all"


def test_steps_reach_the_target_in_that_many_equal_steps(tiny_folder, tmp_path):
    out = tmp_path / "r"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), target_flops_reduction=0.2, steps=1,
                              stop_rule="none", max_layer_fraction=1.0, **TINY))
    its = _iterations(out)
    assert len(its) == 2 and res.summary.stopped == "target_flops_reduction"
    assert its[1].flops_reduction == pytest.approx(0.2, abs=0.02)  # one step of the whole 20 %
    with pytest.raises(ConfigError, match="--steps"):
        SearchConfig(data=str(tiny_folder), steps=2, **TINY).validate()  # no target to divide


def test_a_finished_run_returns_and_recovers_the_iteration_asked_for(tiny_folder, tmp_path, capsys):
    out = tmp_path / "r"
    search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=2, stop_rule="none", **TINY))
    assert json.loads((out / "summary.json").read_text())["best_iteration"] == 2  # the search's pick
    iterations = (out / "iterations.json").read_text()
    with pytest.raises(ConfigError, match="iterations 1 to 2"):  # refused before anything is trained
        search(SearchConfig(resume=str(out), return_iteration=3))
    assert (out / "best" / "model.pt").read_bytes() == (out / "iter_002" / "model.pt").read_bytes()
    res = search(SearchConfig(resume=str(out), return_iteration=1))  # without recovery: iteration 1 as it is
    assert res.summary.best_iteration == 1 and res.summary.best.test_top1 == _iterations(out)[1].test_top1
    assert (out / "best" / "model.pt").read_bytes() == (out / "iter_001" / "model.pt").read_bytes()
    res = search(SearchConfig(resume=str(out), return_iteration=1, recover_epochs=1))
    recovered = IterationRecord.from_json(json.loads((out / "recovered" / "metrics.json").read_text()))
    assert recovered.iteration == 1 and recovered.macs == _iterations(out)[1].macs  # iteration 1, not 2
    assert res.summary.test_top1_before_recovery == _iterations(out)[1].test_top1
    assert (out / "best" / "model.pt").read_bytes() == (out / "recovered" / "model.pt").read_bytes()
    assert (out / "iterations.json").read_text() == iterations  # the steps are not run again
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "returned sub-model: iteration 1" in capsys.readouterr().out
    recovered_bytes = (out / "recovered" / "model.pt").read_bytes()
    res = search(SearchConfig(resume=str(out), reference=str(out / "iter_000")))  # a reference, not a new recovery
    assert (out / "recovered" / "model.pt").read_bytes() == recovered_bytes and not (out / "recovered_1").exists()
    assert res.summary.best.test_top1 == recovered.test_top1 and res.summary.reference is not None
    assert res.summary.reference.test_top1 == pytest.approx(_iterations(out)[0].test_top1)  # scored anew, the same
    table = search_table(out)  # the end table
    assert "recovered below (--return-iteration)" in table and "the search's pick" in table
    assert "returned: iteration 1 recovered" in table


def test_reference_scores_a_saved_model_beside_the_result(tiny_folder, tmp_path):
    full = tmp_path / "full"
    _ft_full(tiny_folder, full)
    out = tmp_path / "r"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none",
                              reference=str(full), **TINY))
    _reference_against_evaluate(res, tiny_folder, full, f"reference {full}")
    with pytest.raises(ConfigError, match="trained at 32 px and this run at 40 px"):  # before any training
        search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "r40"), reference=str(full),
                            **{**TINY, "image_size": 40}))
    assert not (tmp_path / "r40" / "iter_000").exists()


def test_recovery_is_on_by_default_and_recorded_as_a_number(tiny_folder, tmp_path):
    from transtailor.config.commands import DEFAULT_RECOVER_EPOCHS

    out = tmp_path / "r"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none", **TINY_TRAIN))
    assert yaml.safe_load((out / "config.yaml").read_text())["recover_epochs"] == DEFAULT_RECOVER_EPOCHS
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r.get("phase") == "recover" and "epoch" in r] == \
        list(range(1, DEFAULT_RECOVER_EPOCHS + 1))
    assert res.summary.test_top1_before_recovery == _iterations(out)[1].test_top1
    assert resolve(SearchConfig, flags={"preset": "paper"}).recovery_epochs() == 0  # the paper has no recovery
