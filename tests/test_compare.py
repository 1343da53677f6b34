"""transtailor compare: runs every (method, budget, seed), writes a table and a plot, resumes."""

import json
import os
from pathlib import Path

import pytest
import yaml

from transtailor.cli import main
from transtailor.config import CompareConfig
from transtailor.methods.compare import compare, plan_runs, run_config, run_label, source_of

from conftest import TINY


def test_compare_runs_each_method_once_and_resumes(tiny_folder, tmp_path):
    cfg = CompareConfig(data=str(tiny_folder), out=str(tmp_path / "cmp"), methods="ft,l1,transtailor", seeds="0,1",
                        budgets="0.2", **TINY)
    res = compare(cfg)
    labels = sorted({r["run"] for r in res.rows})
    assert labels == ["ft-s0", "ft-s1", "l1-20-s0", "l1-20-s1", "transtailor-20-s0", "transtailor-20-s1"]
    for r in res.rows:
        if r["method"] != "ft":  # pruned to the budget, within 2 points
            assert 0.18 <= r["flops_reduction"] <= 0.22, r
    assert "| transtailor-20 | 2 |" in res.table and "| ft | 2 | 0.00 ± 0.00 |" in res.table
    for seed in (0, 1):  # every pruning run starts from the FT row's own model, not a second FT
        ft = json.loads((tmp_path / "cmp" / f"ft-s{seed}" / "summary.json").read_text())
        for run in ("l1-20", "transtailor-20"):
            first = json.loads((tmp_path / "cmp" / f"{run}-s{seed}" / "iterations.json").read_text())[0]
            assert first["from_ft"] == str(tmp_path / "cmp" / f"ft-s{seed}")
            assert first["test_top1"] == ft["test_top1"] and first["macs"] == ft["macs"]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    for r in res.rows:  # like for like: fine-tuning rows count their training, not the data loading before it
        if r["method"] == "ft":
            summary = json.loads((tmp_path / "cmp" / r["run"] / "summary.json").read_text())
            assert r["wall_seconds"] == summary["train_seconds"] < summary["wall_seconds"]
            assert r["compute"] == pytest.approx(1 / 3)  # one head-only epoch
        else:  # started from the FT row's model: its compute is not counted again
            its = json.loads((tmp_path / "cmp" / r["run"] / "iterations.json").read_text())
            assert its[0]["compute"] == 0.0 and r["compute"] == pytest.approx(sum(i["compute"] for i in its))
    assert "without loading and decoding the data" in res.table
    stamp = (tmp_path / "cmp" / "l1-20-s0" / "summary.json").stat().st_mtime_ns
    (tmp_path / "cmp" / "ft-s1" / "summary.json").unlink()  # as if cut off before the end
    again = compare(cfg)
    assert (tmp_path / "cmp" / "l1-20-s0" / "summary.json").stat().st_mtime_ns == stamp  # not redone
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text()) == json.loads(json.dumps(again.rows))


def test_a_budget_on_the_way_to_a_larger_one_is_read_from_its_iteration(tiny_folder, tmp_path):
    cfg = CompareConfig(data=str(tiny_folder), out=str(tmp_path / "cmp"), methods="l1", seeds="0",
                        budgets="0.1,0.2", **TINY)
    res = compare(cfg)
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir() if p.is_dir()) == ["ft-s0", "l1-20-s0"]
    ten, twenty = res.rows
    assert ten["run"] == "l1-20-s0/iter_001" and twenty["run"] == "l1-20-s0"
    its = json.loads((tmp_path / "cmp" / "l1-20-s0" / "iterations.json").read_text())
    assert ten["test_top1"] == its[1]["test_top1"] and ten["params"] == its[1]["params"]
    assert 0.08 <= ten["flops_reduction"] <= 0.12 and 0.18 <= twenty["flops_reduction"] <= 0.22
    assert ten["curve"] == twenty["curve"][:2] and ten["wall_seconds"] < twenty["wall_seconds"]
    assert ten["compute"] == pytest.approx(sum(i["compute"] for i in its[:2])) and ten["compute"] < twenty["compute"]
    # a budget that is not a whole number of steps gets its own run
    assert source_of(CompareConfig(data="x", budgets="0.25,0.3"), "l1", 0.25) == (0.25, None)
    assert source_of(CompareConfig(data="x", budgets="0.2,0.3", recover_epochs=0), "gbn", 0.2) == (0.3, 2)
    # a recovered run (the default) is read only at its own budget: its iterations were not recovered
    assert source_of(CompareConfig(data="x", budgets="0.2,0.3"), "gbn", 0.2) == (0.2, None)
    assert source_of(CompareConfig(data="x", budgets="0.2,0.3"), "ft-full", None) == (None, None)


def test_plan_covers_budgets_only_for_pruning_methods():
    cfg = CompareConfig(data="x", methods="ft-full,l2sp,gbn,transtailor", seeds="0,1", budgets="0.2,0.3")
    runs = plan_runs(cfg)
    assert ("ft-full", None, 1) in runs and ("l2sp", None, 0) in runs
    assert ("gbn", 0.3, 1) in runs and ("transtailor", 0.2, 0) in runs
    assert len(runs) == 2 + 2 + 4 + 4


def test_full_fine_tuning_rows_train_their_own_epochs(tmp_path):
    cfg = CompareConfig(data="x", methods="ft,ft-full,l2sp,transtailor", epochs=4, full_epochs=24)
    epochs = {m: run_config(cfg, m, 0.2 if m == "transtailor" else None, 0, tmp_path / m).epochs
              for m in ("ft", "ft-full", "l2sp", "transtailor")}
    assert epochs == {"ft": 4, "ft-full": 24, "l2sp": 24, "transtailor": 4}
    assert run_config(CompareConfig(data="x", epochs=4), "ft-full", None, 0, tmp_path / "f").epochs == 4


@pytest.mark.parametrize("args, words", [
    (["--methods", "ft,magic"], "unknown magic"),
    (["--budgets", "0.2,1.5"], "--budgets must be in (0, 1)"),
    (["--seeds", "a,b"], "comma-separated numbers"),
])
def test_bad_compare_input_is_one_line(args, words, tiny_folder, tmp_path, capsys):
    assert main(["compare", "--data", str(tiny_folder), "--out", str(tmp_path / "c"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_compare_at_equal_latency(tiny_folder, tmp_path, fake_speed):
    """--cost latency: budgets are measured speed-ups, each its own run, reported in the table."""
    cfg = CompareConfig(data=str(tiny_folder), out=str(tmp_path / "cmp"), methods="taylor,transtailor", seeds="0",
                        budgets="1.2", cost="latency", round_to=8, **{**TINY, "latency": True,
                                                                    "latency_batch": 2})
    res = compare(cfg)
    assert sorted({r["run"] for r in res.rows}) == ["taylor-1.20x-s0", "transtailor-1.20x-s0"]
    for r in res.rows:
        assert r["speedup"] >= 1.2 * 0.98
    assert "| taylor-1.20x | 1 |" in res.table and "speed-up" in res.table
    assert list((Path(os.environ["TRANSTAILOR_CACHE"]) / "latency").glob("cpu-b2-*.json"))  # not the user's cache
    with pytest.raises(Exception, match="speed-ups above 1"):
        CompareConfig(cost="latency", budgets="0.2").validate()


def test_a_compare_folder_refuses_runs_with_other_settings_but_takes_more_seeds(tiny_folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    compare(CompareConfig(data=str(tiny_folder), out=str(out), methods="ft", seeds="0", **TINY))
    written = (out / "compare_config.json").read_text()
    code = main(["compare", "--data", str(tiny_folder), "--out", str(out), "--methods", "ft", "--seeds", "0",
                 "--model", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "8",
                 "--workers", "0", "--no-latency", "--threads", "1", "--epochs", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--epochs 2 (they have 1)" in err[0]
    assert (out / "compare_config.json").read_text() == written  # the folder still says what its runs are
    res = compare(CompareConfig(data=str(tiny_folder), out=str(out), methods="ft", seeds="0,1", **TINY))
    assert sorted(r["run"] for r in res.rows) == ["ft-s0", "ft-s1"]
    assert run_label("taylor", 0.3) != run_label("taylor", 1.3)


def test_the_other_cost_joins_a_compare_folder(tiny_folder, tmp_path):
    # the MAC-cost and latency-cost searches of benchmarks/equal_latency.sh start from the same FT runs;
    # their runs have other names (taylor-30, taylor-1.30x), so the cost may change within one folder
    out, timed = tmp_path / "cmp", dict(TINY, latency=True, latency_batch=2, latency_rounds=1)
    compare(CompareConfig(data=str(tiny_folder), out=str(out), methods="ft", seeds="0", **timed))
    res = compare(CompareConfig(data=str(tiny_folder), out=str(out), methods="ft", seeds="0", cost="latency",
                                budgets="1.2", **timed))
    assert [r["run"] for r in res.rows] == ["ft-s0"]


def test_pruning_rows_start_from_the_ft_full_row_with_start_ft_full(tiny_folder, tmp_path):
    out = tmp_path / "cmp"
    cfg = CompareConfig(data=str(tiny_folder), out=str(out), methods="ft-full,taylor", seeds="0", budgets="0.2",
                        start="ft-full", full_epochs=2, **TINY)
    res = compare(cfg)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ft-full-s0", "taylor-20-s0"]  # no FT trained
    ft_full = json.loads((out / "ft-full-s0" / "summary.json").read_text())
    first = json.loads((out / "taylor-20-s0" / "iterations.json").read_text())[0]
    assert first["from_ft"] == str(out / "ft-full-s0") and first["test_top1"] == ft_full["test_top1"]
    assert yaml.safe_load((out / "taylor-20-s0" / "config.yaml").read_text())["start"] == "ft-full"
    assert "start from the FT-Full model of the same seed" in res.table
    # another start in the same folder would read the FT-started runs under this title: refused
    with pytest.raises(Exception, match="--start ft"):
        compare(CompareConfig(data=str(tiny_folder), out=str(out), methods="ft-full,taylor", seeds="0",
                              budgets="0.2", full_epochs=2, **TINY))
    # --ft-epochs other than the row's: its own FT-Full start run
    assert run_config(cfg, "taylor", 0.2, 0, out / "t", out / "ft-full-3ep-s0").start == "ft-full"
