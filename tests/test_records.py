"""Typed run records: they write the JSON a run folder holds and read back older run folders."""

import json
from pathlib import Path

import pytest

from transtailor.errors import RunFileError
from transtailor.records import FinetuneSummary, IterationRecord, RunState, SearchSummary, StopCheck

#: one iteration record and one summary of every shape that run folders of earlier versions hold (taken
#: from the run folders under benchmarks/results, which the repository does not keep)
OLD = json.loads((Path(__file__).parent / "data" / "old_records.json").read_text())
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _parts_sum(rec):
    return sum(v for k, v in rec.items() if k.startswith("seconds_") and k != "seconds_total")


def test_every_saved_record_reads_back_to_the_same_json():
    iterations = [r["record"] for r in OLD["iterations"]]
    summaries = [s["summary"] for s in OLD["summaries"]]
    for path in RESULTS.rglob("iterations.json"):  # and any run folder kept beside the results
        iterations += json.loads(path.read_text())
    summaries += [json.loads(p.read_text()) for p in RESULTS.rglob("summary.json")]
    assert len(OLD["iterations"]) >= 9 and len(OLD["summaries"]) >= 7
    for rec in iterations:
        # runs before iteration 0 carried seconds_total lacked it there: it is the sum of the parts
        assert IterationRecord.from_json(rec).to_json() == {**rec, "seconds_total": _parts_sum(rec)}
    for data in summaries:
        cls = SearchSummary if "best_iteration" in data else FinetuneSummary
        assert cls.from_json(data).to_json() == data


def test_an_iteration_record_has_one_total_and_keeps_what_it_does_not_know():
    rec = IterationRecord.from_json({"iteration": 2, "phase": "search", "test_loss": 1.0, "test_top1": 50.0,
                                     "macs": 10, "params": 3, "seconds_alpha": 1.5, "seconds_prune": 0.5,
                                     "seconds_total": 99.0, "val_fall": 0.2, "latency_ms_batch": 7.0,
                                     "latency_batch": 32,
                                     "stop_check": {"rule": "paper", "value": 0.4, "limit": 0.3, "stop": True}})
    assert rec.seconds == {"alpha": 1.5, "prune": 0.5} and rec.seconds_total == 2.0  # the parts, not a stale total
    assert rec.extra == {"val_fall": 0.2}  # written by an older version: kept as it was
    assert (rec.latency_ms_batch, rec.latency_batch) == (7.0, 32)
    assert rec.stop_check == StopCheck("paper", True, 0.4, 0.3)
    out = rec.to_json()
    assert out["seconds_total"] == 2.0 and out["val_fall"] == 0.2 and out["stop_check"]["stop"] is True
    assert "val_top1" not in out and "speedup_batch" not in out  # what was not measured is not written


def test_a_damaged_record_or_state_is_refused_in_one_line():
    with pytest.raises(RunFileError, match="lacks a field"):
        IterationRecord.from_json({"iteration": 1, "phase": "search"})
    with pytest.raises(RunFileError):
        IterationRecord.from_json([1, 2])
    with pytest.raises(RunFileError):
        RunState.from_json({"completed": "3", "best": 1, "macs_original": 5, "stopped": None})
    state = RunState.from_json({"completed": 3, "best": 1, "macs_original": 5, "stopped": None})
    assert state.checksums == {} and state.to_json()["checksums"] == {}
    # summaries cut down to some of their keys (compare reads them): one line each, no KeyError
    for cls, data in ((SearchSummary, {"method": "transtailor", "best_iteration": 1}),
                      (SearchSummary, {"method": "transtailor", "best_iteration": 1, "stopped": None, "iterations": 1,
                                       "macs_original": 5, "wall_seconds": 1.0}),
                      (FinetuneSummary, {"method": "ft"})):
        with pytest.raises(RunFileError, match="lacks"):
            cls.from_json(data)
