"""The criteria registry: a criterion added as one class plus its registration runs through the CLI,
``prune``, ``search`` and ``compare``, with its own options; each method's options reach its runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from transtailor.cli.main import build_parser, main
from transtailor.config import CompareConfig, PruneConfig, SearchConfig, option, resolve, to_dict
from transtailor.errors import ConfigError
from transtailor.methods import prune, search
from transtailor.methods.compare import compare, run_config
from transtailor.pruning.criteria import CRITERIA, Criterion, ScoreContext, Scores, register, unregister
from transtailor.pruning.gates import site_channels

from conftest import TINY


@dataclass
class ToyOptions:
    toy_reverse: bool = option(False, "toy: keep the last channels instead of the first")


class Toy(Criterion):
    """Scores channel j of every site -j (or +j reversed): the pruner must remove the highest indices."""

    name = "toy"
    summary = "a test criterion: channel index"
    Options = ToyOptions

    def __call__(self, ctx: ScoreContext) -> Scores:
        assert isinstance(self.options, ToyOptions)
        sign = 1.0 if self.options.toy_reverse else -1.0
        return Scores({s.module: sign * torch.arange(site_channels(ctx.model, s), dtype=torch.float32)
                       for s in ctx.sites})


@pytest.fixture
def toy():
    register(Toy)  # the one registry line a criterion module has
    yield Toy
    unregister("toy")


def _removed(run: Path, it: int = 1) -> dict[str, list[int]]:
    return json.loads((run / f"iter_{it:03d}" / "pruning.json").read_text())["removed_channels"]


def _widths(run: Path) -> dict[str, int]:
    from transtailor.models import load_model
    from transtailor.pruning import find_gate_sites

    model = load_model(run / "iter_000" / "model.pt")
    return {s.module: site_channels(model, s) for s in find_gate_sites(model, 32)}


def _is_suffix(removed: list[int], n: int) -> bool:
    return removed == list(range(n - len(removed), n))


def test_a_registered_criterion_prunes_by_its_scores_with_its_own_options(toy, tiny_folder, tmp_path):
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "p"), method="toy", flops_reduction=0.2,
                            **TINY))
    assert res.summary.method == "toy" and 0.18 <= res.summary.best.flops_reduction <= 0.22
    widths, removed = _widths(res.run_dir), _removed(res.run_dir)
    assert removed and all(_is_suffix(r, widths[k]) for k, r in removed.items())  # the highest indices went
    # its option, given as a flat key (as in a YAML file), reverses that and is recorded in config.yaml
    cfg = resolve(PruneConfig, flags=dict(data=str(tiny_folder), out=str(tmp_path / "r"), method="toy",
                                          flops_reduction=0.2, toy_reverse=True, **TINY))
    rev = prune(cfg)
    assert all(r == list(range(len(r))) for r in _removed(rev.run_dir).values())
    assert yaml.safe_load((rev.run_dir / "config.yaml").read_text())["toy_reverse"] is True


def test_the_cli_lists_a_registered_criterion_and_its_options(toy, capsys):
    parser = build_parser()
    ns = vars(parser.parse_args(["prune", "--method", "toy", "--toy-reverse"]))
    assert ns["method"] == "toy" and ns["toy_reverse"] is True
    ns = vars(parser.parse_args(["search", "--importance", "toy"]))
    assert ns["importance"] == "toy"
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    prune_help = capsys.readouterr().out
    assert "toy" in prune_help and "a test criterion: channel index" in prune_help
    with pytest.raises(SystemExit):  # the CLI knows nothing else
        parser.parse_args(["prune", "--method", "nonesuch"])


def test_options_of_another_criterion_are_refused_before_anything_is_written(toy, tiny_folder, tmp_path):
    with pytest.raises(ConfigError, match="--gate-lr is an option of gbn, not of --method toy"):
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "x"), method="toy",
                          method_options={"gate_lr": 0.1}, **TINY))
    with pytest.raises(ConfigError, match="unknown option 'toy_revers'.*toy_reverse"):
        resolve(PruneConfig, flags={"method": "toy", "toy_revers": True})
    with pytest.raises(ConfigError, match="--method must be one of"):
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "x"), method="nonesuch", **TINY))
    with pytest.raises(ConfigError, match="--importance sfp prunes while it trains"):
        search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "x"), importance="sfp", **TINY))
    assert not (tmp_path / "x").exists()


def test_two_criteria_cannot_declare_the_same_option(toy):
    @dataclass
    class Clash:
        toy_reverse: bool = option(True, "the same name")

    class Other(Criterion):
        name, summary, Options = "other", "clashes", Clash

    with pytest.raises(ValueError, match="already declared by 'toy'"):
        register(Other)
    assert "other" not in CRITERIA


def test_the_search_takes_a_registered_criterion_as_its_importance(toy, tiny_folder, tmp_path):
    res = search(SearchConfig(data=str(tiny_folder), out=str(tmp_path / "s"), importance="toy", max_iterations=1,
                              stop_rule="none", **TINY))
    widths, removed = _widths(res.run_dir), _removed(res.run_dir)
    assert removed and all(_is_suffix(r, widths[k]) for k, r in removed.items())


def test_compare_runs_a_registered_criterion_with_its_options(toy, tiny_folder, tmp_path):
    cfg = CompareConfig(data=str(tiny_folder), out=str(tmp_path / "cmp"), methods="ft,toy", seeds="0",
                        budgets="0.2", method_options={"toy_reverse": True}, **TINY)
    res = compare(cfg)
    assert [r["run"] for r in res.rows] == ["ft-s0", "toy-20-s0"]
    run = tmp_path / "cmp" / "toy-20-s0"
    assert all(r == list(range(len(r))) for r in _removed(run).values())  # reversed: its option reached it
    assert "| toy-20 | 1 |" in res.table


def test_compare_passes_every_pruning_and_method_option_to_its_runs(tmp_path):
    cfg = CompareConfig(data="x", max_layer_fraction=0.5, min_channels=4, distill="previous", distill_weight=0.3,
                        importance_ft="preserve", round_to=16, latency_cache=str(tmp_path),
                        method_options={"taylor_on": "weight", "gate_lr": 0.1, "alpha_epochs": 2})
    taylor = run_config(cfg, "taylor", 0.2, 0, tmp_path / "t")
    gbn = run_config(cfg, "gbn", 0.2, 0, tmp_path / "g")
    tt = run_config(cfg, "transtailor", 0.2, 0, tmp_path / "tt")
    for run in (taylor, gbn, tt):
        assert (run.max_layer_fraction, run.min_channels, run.distill, run.distill_weight, run.round_to,
                run.latency_cache) == (0.5, 4, "previous", 0.3, 16, str(tmp_path))
    assert taylor.method_options == {"taylor_on": "weight"}
    assert gbn.method_options == {"gate_lr": 0.1, "gate_l1": 0.0}
    assert isinstance(tt, SearchConfig) and tt.importance == "beta" and tt.importance_ft == "preserve"
    assert tt.method_options["alpha_epochs"] == 2 and tt.stop_rule == "none"
    # what a run folder records is flat, as the flags are
    assert to_dict(taylor)["taylor_on"] == "weight" and "method_options" not in to_dict(taylor)
