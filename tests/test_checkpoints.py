"""The run folder's owner (``methods/checkpoints.py``): commits, resume checks and resume options, without
running a search: a real small model is saved and read back, and the folder is damaged by hand."""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from transtailor.config import SearchConfig, to_dict
from transtailor.errors import ConfigError, RunFileError
from transtailor.methods.checkpoints import Checkpoints
from transtailor.models import create_model
from transtailor.records import IterationRecord, RunState
from transtailor.runs import RunDir
from transtailor.training.predictions import Evaluated, Predictions


def _evaluated() -> Evaluated:
    labels = torch.tensor([0, 1, 2])
    return Evaluated(test=Predictions(labels, labels, torch.zeros(3, dtype=torch.float64)))


def _record(it: int) -> IterationRecord:
    return IterationRecord(iteration=it, phase="ft" if it == 0 else "taylor", test_loss=1.0 / (it + 1),
                           test_top1=50.0 + it, macs=1000 - 100 * it, params=10 - it, flops_reduction=0.1 * it)


@pytest.fixture
def committed(tmp_path):
    """A run folder with iterations 0 to 2 committed, the model changed before each commit."""
    run = RunDir(tmp_path / "run").create()
    ckpt = Checkpoints(run)
    bundle = create_model("mobilenet_v3_small", num_classes=3, weights="none")
    state = RunState(completed=0, best=0, macs_original=1000)
    iterations: list[IterationRecord] = []
    for it in range(3):
        with torch.no_grad():
            bundle.model.classifier[-1].bias.fill_(float(it))  # which iteration's model this is
        rec = _record(it)
        iterations.append(rec)
        state.completed = state.best = it
        ckpt.commit(it, rec, bundle, {"iteration": it}, state, iterations, _evaluated(),
                    scores=None if it == 0 else {"scores": {}}, pruning=None if it == 0 else {"removed": {}})
    return ckpt, bundle


def test_a_commit_writes_the_iteration_then_the_list_then_the_state(committed):
    ckpt, _ = committed
    folder = ckpt.folder(2)
    assert sorted(p.name for p in folder.iterdir()) == ["importance.pt", "metrics.json", "model.pt", "predictions.json",
                                                       "pruning.json"]
    state = json.loads(ckpt.run.file("state.json").read_text())
    assert state["completed"] == 2 and set(state["checksums"]) == {f"iter_00{i}/model.pt" for i in range(3)}
    assert [r["iteration"] for r in json.loads(ckpt.run.file("iterations.json").read_text())] == [0, 1, 2]
    lines = [json.loads(line) for line in ckpt.run.file("metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["test_top1"]) for r in lines] == [(it, 50.0 + it) for it in range(3)]


def test_resume_returns_the_committed_state_and_records_and_each_iterations_model(committed):
    ckpt, bundle = committed
    state, iterations = ckpt.resume()
    assert (state.completed, state.best) == (2, 2)
    assert [r.to_json() for r in iterations] == [_record(it).to_json() for it in range(3)]
    for it in range(3):
        assert float(ckpt.load_model(it).model.classifier[-1].bias[0].detach()) == float(it)
    best = ckpt.keep_best(ckpt.folder(1))
    assert (ckpt.run.path / "best" / "model.pt").read_bytes() == (ckpt.folder(1) / "model.pt").read_bytes()
    assert float(best.model.classifier[-1].bias[0].detach()) == 1.0


def test_resume_clears_what_a_kill_after_the_last_commit_left(committed):
    ckpt, _ = committed
    state = json.loads(ckpt.run.file("state.json").read_text())
    state["completed"] = 1  # as if iteration 2 was written but the kill came before its commit
    ckpt.run.file("state.json").write_text(json.dumps(state))
    (ckpt.folder(1) / ".model.pt.abc.tmp").write_bytes(b"half a file")
    state, iterations = ckpt.resume()
    assert state.completed == 1 and [r.iteration for r in iterations] == [0, 1]
    assert not ckpt.folder(2).exists() and not list(ckpt.run.path.rglob(".*.tmp"))
    assert [r["iteration"] for r in json.loads(ckpt.run.file("iterations.json").read_text())] == [0, 1]
    lines = [json.loads(line) for line in ckpt.run.file("metrics.jsonl").read_text().splitlines()]
    assert max(r["iteration"] for r in lines) == 1


@pytest.mark.parametrize("damage, message", [
    (lambda c: (c.folder(1) / "model.pt").write_bytes(b"x"), "iter_001/model.pt is missing or changed"),
    (lambda c: os.remove(c.folder(0) / "model.pt"), "iter_000/model.pt is missing or changed"),
    (lambda c: c.run.file("state.json").write_text('{"complet'), "state.json cannot be read"),
    (lambda c: c.run.file("state.json").write_text('{"completed": "two"}'), "is not a run state TransTailor wrote"),
])
def test_resume_refuses_a_damaged_committed_file(committed, damage, message):
    ckpt, _ = committed
    damage(ckpt)
    with pytest.raises(RunFileError, match=message):
        ckpt.resume()


def test_resume_refuses_a_committed_iteration_whose_record_cannot_be_read(committed):
    ckpt, _ = committed
    (ckpt.folder(1) / "metrics.json").write_text(json.dumps(_record(2).to_json()))  # another iteration's record
    with pytest.raises(ConfigError, match="iteration 1 is committed but .*metrics.json cannot be read"):
        ckpt.resume()


def test_resume_options_take_where_the_run_lives_and_refuse_what_it_computes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    data = tmp_path / "images"
    data.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"command": "search", **to_dict(SearchConfig(
        data=str(data), out=str(run), epochs=3, seed=4))}))
    moved = tmp_path / "moved"
    moved.mkdir()
    cfg = Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(run), data=str(moved), threads=2))
    assert (cfg.epochs, cfg.seed, cfg.data, cfg.threads, cfg.out) == (3, 4, str(moved), 2, str(run))
    with pytest.raises(ConfigError, match=r"drop --epochs 5 \(the run has 3\)"):
        Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(run), epochs=5))
    with pytest.raises(ConfigError, match="config.yaml is missing"):
        Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(tmp_path / "images")))
    # the default recovery is told apart from one given: a run of 8 resumed with 24 recovers 24
    (run / "config.yaml").write_text(yaml.safe_dump({"command": "search", **to_dict(SearchConfig(
        data=str(data), out=str(run), recover_epochs=8))}))
    assert Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(run), recover_epochs=24)).recover_epochs == 24
    assert Checkpoints.resume_config(SearchConfig, SearchConfig(resume=str(run))).recover_epochs == 8
