"""The TransTailor search: Algorithm 1's stopping rule, run folder, resume after kill -9, export."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from transtailor.methods import finetune, search
from transtailor.methods.setup import saved_start
from transtailor.methods.stopping import StopRule, Stops
from transtailor.cli import main
from transtailor.config import FinetuneConfig, PruneConfig, SearchConfig, resolve
from transtailor.errors import ConfigError
from transtailor.models import load_model
from transtailor.records import IterationRecord, RunState
from transtailor.reporting.tables import unmet_target

from conftest import TINY, TINY_TRAIN


def _flags(d):
    out = []
    for k, v in d.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + k.replace("_", "-"))
        else:
            out += [flag, str(v)]
    return out


def _trajectory(stops, vals, losses=None, macs=None):
    """The loop's decisions over a scripted run: iteration i has val top-1 ``vals[i]``, val loss
    ``losses[i]`` (1.0 when not given) and ``macs[i]`` MACs (10 % of 1000 fewer per step when not
    given). Returns the final state and the records, as the loop would leave them."""
    losses, macs = losses or {}, macs or {}

    def rec(i):
        m = macs.get(i, int(1000 * (1 - 0.1 * i)))
        return IterationRecord(iteration=i, phase="search", val_top1=vals[i], val_loss=losses.get(i, 1.0),
                               test_loss=0.0, test_top1=0.0, macs=m, params=1, flops_reduction=1 - m / 1000)

    records, state, it = [rec(0)], RunState(completed=0, best=0, macs_original=1000), 0
    while state.stopped is None:
        it += 1
        state.stopped = stops.before(it, records[-1])
        if state.stopped is None:
            stops.record(state, records, rec(it))
    return state, records


def test_tau_stop_keeps_the_last_sub_model_within_tau():
    state, records = _trajectory(Stops(StopRule("paper", tau=0.3)), {0: 50.0, 1: 52.0, 2: 51.8, 3: 51.0, 4: 60.0})
    assert (state.stopped, state.best, state.completed) == ("paper", 2, 3)  # 51.8 is within 0.3 of 52; 51.0 is not
    assert [r.best for r in records] == [True, True, True, False]
    assert records[-1].stop_check.value == pytest.approx(0.8)  # below the last kept (51.8), not the best (52)


def test_loss_stop_compares_with_the_lowest_loss_so_far():
    # top-1 is level; the loss falls to 0.8, then drifts up in steps of under 5 % each: the rule
    # stops at the first loss more than 5 % above 0.8 (0.85), not at the first rise over the previous one
    state, records = _trajectory(Stops(StopRule("loss")), {i: 50.0 for i in range(6)},
                                 {0: 2.0, 1: 0.8, 2: 0.82, 3: 0.835, 4: 0.85, 5: 0.5})
    assert (state.stopped, state.best) == ("loss", 3)
    assert [r.best for r in records] == [True, True, True, True, False]
    assert records[-1].stop_check.limit == pytest.approx(0.84)


def test_one_image_does_not_stop_the_default_search_but_stops_the_papers():
    # 20 validation images: one more miss is 5 points of top-1 but barely moves the mean loss
    vals, losses = {0: 60.0, 1: 55.0, 2: 55.0}, {0: 1.5, 1: 1.0, 2: 1.02}
    state, _ = _trajectory(Stops(StopRule("loss"), max_iterations=2), vals, losses)
    assert (state.stopped, state.best) == ("max_iterations", 2)
    state, _ = _trajectory(Stops(StopRule("paper"), max_iterations=2), vals, losses)
    assert (state.stopped, state.best) == ("paper", 0)


def test_target_flops_and_max_iterations_stop():
    state, _ = _trajectory(Stops(StopRule("loss"), target_flops_reduction=0.25), {i: 50.0 for i in range(10)})
    assert (state.stopped, state.best) == ("target_flops_reduction", 3)
    state, _ = _trajectory(Stops(StopRule("loss"), max_iterations=2), {i: 50.0 for i in range(10)})
    assert (state.stopped, state.best) == ("max_iterations", 2)


def test_a_paper_stop_is_recorded_as_such_even_when_the_step_removed_nothing():
    # val falls by 10 points and the MACs stay: the stop rule's reason wins over "no progress"
    state, _ = _trajectory(Stops(StopRule("paper")), {0: 50.0, 1: 40.0}, macs={1: 1000})
    assert (state.stopped, state.best) == ("paper", 0)
    state, _ = _trajectory(Stops(StopRule("paper")), {0: 50.0, 1: 50.0}, macs={1: 1000})
    assert (state.stopped, state.best) == ("no_progress", 1)


def test_no_stop_rule_runs_to_the_target_speedup():
    stops = Stops(None, target_speedup=1.5)
    last = IterationRecord(iteration=1, phase="prune", test_loss=0, test_top1=0, macs=1, params=1, speedup_batch=1.48)
    assert stops.before(2, last) == "target_speedup"  # within the 2 % tolerance of timing noise
    assert stops.before(2, dataclasses.replace(last, speedup_batch=1.4)) is None
    assert stops.before(2, dataclasses.replace(last, speedup_batch=None)) is None


def test_a_target_decides_where_the_default_search_ends(tiny_folder, tmp_path):
    assert SearchConfig().accuracy_stop() == "loss"  # no target: the loss rule decides
    assert SearchConfig(target_speedup=1.5).accuracy_stop() == "none"
    assert SearchConfig(target_flops_reduction=0.4, stop_rule="loss").accuracy_stop() == "loss"  # asked for
    assert resolve(SearchConfig, flags={"preset": "paper", "target_speedup": 1.5}).accuracy_stop() == "paper"
    out = tmp_path / "t"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), target_flops_reduction=0.1, **TINY))
    iterations = [IterationRecord.from_json(r) for r in json.loads((out / "iterations.json").read_text())]
    assert res.summary.stopped == "target_flops_reduction"
    assert [r.stop_check for r in iterations[1:]] == [None]  # no accuracy rule judged the step
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert (recorded["stop_rule"], recorded["start"], recorded["ft_epochs"]) == ("none", "ft-full", 24)  # as applied
    assert iterations[0].phase == "ft_full" and res.summary.reference is not None  # FT-Full beside the result
    assert res.summary.reference.name.startswith("FT-Full") and res.summary.reference.test_top1 == iterations[0].test_top1
    with_rule = tmp_path / "l"
    search(SearchConfig(data=str(tiny_folder), out=str(with_rule), target_flops_reduction=0.1, stop_rule="loss",
                        **TINY))
    judged = IterationRecord.from_json(json.loads((with_rule / "iterations.json").read_text())[1])
    assert judged.stop_check is not None and judged.stop_check.value is not None  # the rule, when asked for


def test_search_needs_validation():
    with pytest.raises(ConfigError, match="select sub-models on validation"):
        SearchConfig(val_fraction=0.0).validate()


def test_search_run_folder_report_and_export(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["search", "--data", str(tiny_folder), *_flags(TINY), "--max-iterations", "2", "--stop-rule", "none",
                 "--importance-ft", "preserve", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    # the search ends with one row per model, the returned one marked, and why it stopped
    table = stdout[stdout.index("iter  FLOPs fewer %"):].splitlines()
    assert [line.split()[0] for line in table[1:4]] == ["0", "1", "2"]
    assert table[1].endswith("FT") and table[3].endswith("returned")
    assert "returned: iteration 2," in stdout and "stopped: reached --max-iterations" in stdout
    for name in ("config.yaml", "metrics.jsonl", "iterations.json", "state.json", "summary.json", "best/model.pt",
                 "iter_000/model.pt", "iter_001/importance.pt", "iter_002/pruning.json", "accuracy_vs_flops.png",
                 "pruned_filters.png"):
        assert (out / name).is_file(), name
    iterations = json.loads((out / "iterations.json").read_text())
    assert iterations[2]["flops_reduction"] >= 0.2 - 1e-6 and iterations[1]["flops_reduction"] >= 0.1 - 1e-6
    pruning = json.loads((out / "iter_001" / "pruning.json").read_text())
    assert sum(pruning["removed"].values()) == iterations[1]["filters_removed"] > 0
    best = load_model(out)
    assert sum(p.numel() for p in best.parameters()) == iterations[2]["params"]

    assert main(["report", str(out)]) == 0
    assert "stopped by: max_iterations" in capsys.readouterr().out
    for fmt in ("torchscript", "onnx"):
        assert main(["export", str(out), "--format", fmt]) == 0
        assert "max abs difference" in capsys.readouterr().out
    x = torch.randn(3, 3, 32, 32)
    scripted = torch.jit.load(str(out / "best" / "model.torchscript.pt"))
    torch.testing.assert_close(scripted(x), best(x), atol=1e-4, rtol=1e-4)


def _search_cmd(data, out, extra=()):
    return [sys.executable, "-m", "transtailor", "search", "--data", str(data), *_flags(TINY), "--max-iterations", "3",
            "--stop-rule", "none", "--out", str(out), *extra]


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(tiny_folder, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_search_cmd(tiny_folder, tmp_path / "whole"), check=True, env=env, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_search_cmd(tiny_folder, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    state = out / "state.json"
    while time.time() < deadline:  # wait until iteration 1 is complete, then kill during iteration 2
        if state.is_file() and json.loads(state.read_text())["completed"] >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["completed"] < 3, "the run finished before it could be killed"
    subprocess.run([sys.executable, "-m", "transtailor", "search", "--resume", str(out)], check=True, env=env,
                   capture_output=True)
    whole = json.loads((tmp_path / "whole" / "iterations.json").read_text())
    resumed = json.loads((out / "iterations.json").read_text())
    keys = ("val_top1", "test_top1", "macs", "params", "filters_removed")
    assert [{k: r.get(k) for k in keys} for r in resumed] == [{k: r.get(k) for k in keys} for r in whole]
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(load_model(out)(x), load_model(tmp_path / "whole")(x), rtol=0, atol=0)


@pytest.mark.parametrize("args, words", [
    (["search", "--resume", "{tmp}/nothing"], "no search or prune run there"),
    (["search", "--flops-step", "1.5"], "--flops-step must be in (0, 1)"),
    (["search", "--target-flops-reduction", "0"], "--target-flops-reduction must be in (0, 1)"),
    (["search", "--max-iterations", "0"], "--max-iterations must be at least 1"),
    (["search", "--val-fraction", "0"], "select sub-models on validation"),
    (["report", "{tmp}"], "holds no iterations.json"),
    (["export", "{tmp}/missing"], "does not exist"),
])
def test_search_commands_bad_input(args, words, tmp_path, capsys):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0]


def test_default_importance_is_taylor_and_beta_trains_alpha_first(tiny_folder, tmp_path):
    from transtailor.config import PruneConfig
    from transtailor.methods import prune

    common = dict(data=str(tiny_folder), **TINY)
    default = search(SearchConfig(out=str(tmp_path / "t"), max_iterations=1, stop_rule="none", **common))
    taylor = prune(PruneConfig(out=str(tmp_path / "p"), method="taylor", flops_reduction=0.1, **common))
    paper = search(SearchConfig(out=str(tmp_path / "b"), max_iterations=1, stop_rule="none", importance="beta",
                                method_options={"alpha_lr": 0.5}, **common))

    def saved(res):
        return torch.load(res.run_dir / "iter_001" / "importance.pt")

    def removed(res):
        return json.loads((res.run_dir / "iter_001" / "pruning.json").read_text())["removed_channels"]

    # the default search's scores are Taylor pruning's: the same filters go
    for k, v in saved(taylor)["scores"].items():
        torch.testing.assert_close(saved(default)["scores"][k], v)
    assert removed(default) == removed(taylor)
    assert "alpha" not in saved(default)  # no scaling factor was trained
    # the paper's importance trains alpha first, which moves it off 1 and changes the scores
    assert any(not torch.allclose(a, torch.ones_like(a)) for a in saved(paper)["alpha"].values())
    assert any(not torch.allclose(saved(paper)["scores"][k], v) for k, v in saved(default)["scores"].items())


def test_a_failed_fine_tuning_leaves_no_gradient_hook_behind(tiny_folder, tmp_path):
    from torch.optim.optimizer import _global_optimizer_pre_hooks

    from transtailor import Criterion, ScoreContext, Scores, register
    from transtailor.pruning.criteria import unregister
    from transtailor.pruning.gates import site_channels

    @register
    class Vandal(Criterion):  # scores the filters, then the training images disappear
        name, summary = "vandal", "a test criterion: channel index, then the train images go"

        def __call__(self, ctx: ScoreContext) -> Scores:
            for image in (tiny_folder / "train").rglob("*.jpg"):
                image.unlink()
            return Scores({s.module: -torch.arange(site_channels(ctx.model, s), dtype=torch.float32)
                           for s in ctx.sites})

    before = len(_global_optimizer_pre_hooks)
    try:  # preserve registers its process-wide hook before the fine-tuning that then fails to read an image
        with pytest.raises(FileNotFoundError):
            search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "r"), importance="vandal",
                                importance_ft="preserve", max_iterations=1, **TINY))
    finally:
        unregister("vandal")
    assert len(_global_optimizer_pre_hooks) == before


def test_each_time_field_has_one_meaning(tiny_folder, tmp_path):
    res = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "s"), max_iterations=1, stop_rule="none",
                              **TINY))
    its, summary = res.iterations, res.summary
    assert all(r.seconds_total > 0 for r in its)  # every iteration, the FT one too
    assert its[0].seconds == {"finetune": its[0].seconds_total}
    assert set(its[1].seconds) == {"score", "prune", "finetune", "eval"}  # the default importance, Taylor
    assert (summary.method, summary.criterion) == ("transtailor", "taylor")  # the summary names the criterion
    # the run folder holds exactly the returned records
    assert json.loads((res.run_dir / "iterations.json").read_text()) == [r.to_json() for r in its]
    assert json.loads((res.run_dir / "summary.json").read_text()) == json.loads(json.dumps(summary.to_json()))
    saved = json.loads((res.run_dir / "iterations.json").read_text())[1]
    assert saved["seconds_total"] == pytest.approx(sum(saved[f"seconds_{k}"] for k in its[1].seconds))
    # the method's own time over its iterations; the process's wall time also loads the data
    assert summary.method_seconds == pytest.approx(sum(r.seconds_total for r in its))
    assert summary.wall_seconds > summary.method_seconds


def test_recovery_trains_the_returned_sub_model_and_returns_it(tiny_folder, tmp_path):
    out = tmp_path / "r"
    res = search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=2, stop_rule="none",
                              **dict(TINY, recover_epochs=2)))
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best_iteration"]
    kept = IterationRecord.from_json(json.loads((out / f"iter_{best:03d}" / "metrics.json").read_text()))
    recovered = IterationRecord.from_json(json.loads((out / "recovered" / "metrics.json").read_text()))
    assert summary["test_top1_before_recovery"] == kept.test_top1 and summary["test_top1"] == recovered.test_top1
    assert recovered.phase == "recover" and recovered.macs == kept.macs  # trained, not pruned further
    assert (out / "best" / "model.pt").read_bytes() == (out / "recovered" / "model.pt").read_bytes()
    trained = load_model(out / "recovered" / "model.pt").state_dict()
    before = load_model(out / f"iter_{best:03d}" / "model.pt").state_dict()
    assert any(not torch.equal(trained[k], before[k]) for k in before if before[k].is_floating_point())
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r.get("phase") == "recover" and "epoch" in r] == [1, 2]
    assert res.summary.best.test_top1 == recovered.test_top1


def test_a_finished_run_resumed_with_more_recovery_epochs_keeps_the_earlier_recovery(tiny_folder, tmp_path):
    out = tmp_path / "r"
    search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none",
                        **dict(TINY, recover_epochs=1)))
    first = (out / "recovered" / "model.pt").read_bytes()
    iterations = (out / "iterations.json").read_text()
    res = search(SearchConfig(resume=str(out), recover_epochs=2))
    assert (out / "recovered_1" / "model.pt").read_bytes() == first  # kept, not overwritten
    assert (out / "best" / "model.pt").read_bytes() == (out / "recovered" / "model.pt").read_bytes() != first
    assert (out / "iterations.json").read_text() == iterations  # the loop is not run again
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r.get("phase") == "recover" and "epoch" in r] == [1, 1, 2]
    assert res.summary.best.test_top1 == IterationRecord.from_json(
        json.loads((out / "recovered" / "metrics.json").read_text())).test_top1


def test_a_finished_run_resumed_with_a_teacher_recovers_again_and_a_run_with_steps_left_refuses(tiny_folder,
                                                                                                 tmp_path):
    out = tmp_path / "r"
    search(SearchConfig(data=str(tiny_folder), out=str(out), max_iterations=1, stop_rule="none",
                        **dict(TINY, recover_epochs=1)))
    first, config = (out / "recovered" / "model.pt").read_bytes(), (out / "config.yaml").read_text()
    # pruning on would train a step with the new options: refused before anything is written
    with pytest.raises(ConfigError, match="--label-smoothing 0.1 would change only a finished run's recovery"):
        search(SearchConfig(resume=str(out), max_iterations=2, label_smoothing=0.1))
    assert (out / "config.yaml").read_text() == config
    iterations = (out / "iterations.json").read_text()
    search(SearchConfig(resume=str(out), distill="start", label_smoothing=0.1))
    assert (out / "iterations.json").read_text() == iterations  # the steps are not run again
    saved = yaml.safe_load((out / "config.yaml").read_text())  # the steps' own options, the recovery's apart
    assert (saved["distill"], saved["label_smoothing"]) == ("none", 0.0)
    assert saved["recovery_options"] == {"distill": "start", "label_smoothing": 0.1}
    assert (out / "recovered_1" / "model.pt").read_bytes() == first != (out / "recovered" / "model.pt").read_bytes()

    def trained_with(folder: str) -> dict:
        return json.loads((out / folder / "metrics.json").read_text())["recovery"]

    assert trained_with("recovered") == {"distill": "start", "distill_weight": 0.5, "distill_temperature": 4.0,
                                         "label_smoothing": 0.1, "lr_head": 0.05, "lr_backbone": 0.005}
    assert trained_with("recovered_1")["distill"] == "none" and trained_with("recovered_1")["label_smoothing"] == 0
    again = (out / "recovered" / "model.pt").read_bytes()
    search(SearchConfig(resume=str(out)))  # the same recovery options: the recovery is kept
    assert not (out / "recovered_2").exists() and (out / "recovered" / "model.pt").read_bytes() == again
    search(SearchConfig(resume=str(out), label_smoothing=0.2))  # another one: recovered again
    assert (out / "recovered_2" / "model.pt").read_bytes() == again
    assert trained_with("recovered") == dict(trained_with("recovered_2"), label_smoothing=0.2)
    lowered = (out / "recovered" / "model.pt").read_bytes()
    search(SearchConfig(resume=str(out), lr_backbone=0.0005, recover_epochs=2))  # a lower learning rate
    assert (out / "recovered_3" / "model.pt").read_bytes() == lowered
    assert trained_with("recovered") == dict(trained_with("recovered_3"), lr_backbone=0.0005)
    lrs = [r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
           if r.get("phase") == "recover" and "lr" in r]
    assert lrs[-2] == [0.05, 0.0005]  # its first epoch ends at the top of its schedule: head, backbone


def test_a_run_recovered_again_at_another_rate_prunes_on_at_its_steps_own_rate(tiny_folder, tmp_path):
    out = tmp_path / "r"
    base = dict(TINY, data=str(tiny_folder), stop_rule="none", epochs=2, recover_epochs=2, lr_backbone=0.002)
    search(SearchConfig(out=str(out), max_iterations=1, **base))
    search(SearchConfig(resume=str(out), lr_backbone=0.0005))  # the recovery again, at a quarter of the rate
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lr_backbone"] == 0.002 and saved["recovery_options"] == {"lr_backbone": 0.0005}
    search(SearchConfig(resume=str(out), max_iterations=2))  # then one step more
    assert json.loads((out / "recovered" / "metrics.json").read_text())["recovery"]["lr_backbone"] == 0.0005
    search(SearchConfig(resume=str(out), lr_backbone=0.002))  # the steps' own rate: nothing apart any more
    assert yaml.safe_load((out / "config.yaml").read_text())["recovery_options"] == {}
    ends = {}  # each phase's first epochs' last learning rates: (head, backbone)
    for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()):
        if "lr" in r and r.get("epoch") == 1:
            ends.setdefault(r["phase"], []).append(r["lr"])
    # 2-epoch cosine steps end epoch 1 at half their rate; a recovery's warm-up epoch ends at its top rate
    assert ends["finetune1"] == ends["finetune2"] == [[0.025, 0.001]]
    assert ends["recover"] == [[0.05, 0.002], [0.05, 0.0005], [0.05, 0.0005], [0.05, 0.002]]


def test_a_target_the_stop_rule_kept_from_says_how_to_reach_it(tmp_path):
    kept = IterationRecord(iteration=2, phase="finetune", test_loss=1.0, test_top1=80.0, macs=70, params=1,
                           flops_reduction=0.2, speedup_batch=1.21)
    config = tmp_path / "config.yaml"
    config.write_text("target_speedup: 1.5\n")
    said = unmet_target(tmp_path, kept, "loss")
    assert said is not None and "--target-speedup 1.5 was not reached" in said and "1.21x" in said
    assert "--stop-rule none" in said
    assert unmet_target(tmp_path, kept, "target_speedup") is None  # reached: nothing to say
    assert unmet_target(tmp_path, kept, "max_iterations") is None  # not the accuracy rule's doing
    config.write_text("target_flops_reduction: 0.4\n")
    said = unmet_target(tmp_path, kept, "paper")
    assert said is not None and "--target-flops-reduction 0.4" in said and "20.0 % fewer MACs" in said
    config.write_text("stop_rule: loss\n")  # no target asked for: the stop rule decides alone
    assert unmet_target(tmp_path, kept, "loss") is None


def test_a_finished_search_resumed_with_a_deeper_target_prunes_on_as_one_run_would(tiny_folder, tmp_path):
    base = dict(TINY, data=str(tiny_folder), stop_rule="none", flops_step=0.1, recover_epochs=1)
    search(SearchConfig(out=str(tmp_path / "whole"), target_flops_reduction=0.2, **base))
    out = tmp_path / "deepened"
    search(SearchConfig(out=str(out), target_flops_reduction=0.1, **base))
    first_step = (out / "iter_001" / "model.pt").read_bytes()
    first_recovery = (out / "recovered" / "model.pt").read_bytes()
    res = search(SearchConfig(resume=str(out), target_flops_reduction=0.2))
    assert (out / "iter_001" / "model.pt").read_bytes() == first_step  # kept, not redone
    assert (out / "recovered_1" / "model.pt").read_bytes() == first_recovery  # the earlier result is kept
    keys = ("val_top1", "test_top1", "macs", "params", "filters_removed")
    whole = json.loads((tmp_path / "whole" / "iterations.json").read_text())
    deepened = json.loads((out / "iterations.json").read_text())
    assert [{k: r.get(k) for k in keys} for r in deepened] == [{k: r.get(k) for k in keys} for r in whole]
    assert res.summary.best_iteration == 2 and res.summary.stopped == "target_flops_reduction"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["target_flops_reduction"], saved["target_speedup"]) == (0.2, None)  # a later --resume keeps it
    with pytest.raises(ConfigError, match="at or past the new end already.*--return-iteration"):
        search(SearchConfig(resume=str(out), target_flops_reduction=0.1))


def test_a_search_its_stop_rule_ended_is_not_continued_by_a_new_target(tmp_path):
    from transtailor.methods.iterative import _going_on

    rec = IterationRecord(iteration=0, phase="ft", test_loss=1.0, test_top1=80.0, macs=100, params=1,
                          flops_reduction=0.0)
    with pytest.raises(ConfigError, match="ended by 'loss' after iteration 0.*start a new run"):
        _going_on(RunState(completed=0, best=0, macs_original=100, stopped="loss"), [rec],
                  Stops(target_flops_reduction=0.5), "search", tmp_path)
    _going_on(RunState(completed=0, best=0, macs_original=100, stopped="target_flops_reduction"), [rec],
              Stops(target_flops_reduction=0.5), "search", tmp_path)  # prunes on


def test_the_start_model_defaults_to_ft_full_for_a_speed_and_to_what_a_saved_model_was(tiny_folder, tmp_path):
    assert SearchConfig().start_point() == "ft" and SearchConfig().start_epochs() == SearchConfig().epochs  # the paper's
    with_target = SearchConfig(target_speedup=1.5)
    assert (with_target.start_point(), with_target.start_epochs()) == ("ft-full", 24)
    assert SearchConfig(target_speedup=1.5, start="ft").start_point() == "ft"  # asked for
    assert resolve(SearchConfig, flags={"preset": "paper", "target_speedup": 1.5}).start_point() == "ft"
    assert PruneConfig(flops_reduction=0.3).start_point() == "ft"  # the baselines start where the paper's do
    head = finetune(FinetuneConfig(data=str(tiny_folder), out=str(tmp_path / "ft"), mode="head", **TINY_TRAIN))
    assert saved_start(str(head.run_dir)) == "ft" and saved_start(str(head.run_dir / "model.pt")) == "ft"
    full = tmp_path / "full"
    finetune(FinetuneConfig(data=str(tiny_folder), out=str(full), mode="full", **TINY_TRAIN))
    assert saved_start(str(full)) == "ft-full" and saved_start(str(tmp_path / "nowhere.pt")) is None
    res = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "s"), from_ft=str(head.run_dir),
                              target_flops_reduction=0.1, **TINY))
    assert res.iterations[0].phase == "ft" and res.summary.reference is None  # a head-only model is not FT-Full
