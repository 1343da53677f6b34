"""``transtailor compare``: several methods x seeds (x FLOPs budgets) on one dataset and model.

Every run is an ordinary run folder under the comparison's folder, made with the same common
options (model, data, image size, epochs, learning rates, regulariser strengths), so that two rows
differ only in the method. Work is not repeated:

- the pruning methods and TransTailor of one seed all start (``--from-ft``) from that seed's FT run,
  the table's FT row (``--start ft-full``: its FT-Full row), instead of each training it again;
- a pruning run goes in ``--flops-step`` steps, so a smaller budget that is a whole number of steps
  (20 % on the way to 30 %) is read from the larger run's iteration instead of being run again;
- a run whose ``summary.json`` exists is not redone; a search or prune run cut off mid-way resumes
  from its last complete iteration; a fine-tuning run cut off mid-way starts again.

The comparison writes ``compare.md`` (the table), ``compare.json`` (every row's numbers) and
``compare.png`` (test top-1 against FLOPs reduction, one curve per method).

TransTailor runs here with its accuracy stop off (``stop_rule="none"``) and ``--target-flops-reduction``
set to the budget, so that its sub-model is compared with the pruning baselines at the same FLOPs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

from ..config import (FINETUNE_METHODS, CommonConfig, CompareConfig, FinetuneConfig, PruneConfig,
                      PruningOptions, SearchConfig, method_options_of, to_dict)
from ..distributed import barrier, is_main
from ..reporting.tables import markdown_table, mean_std
from ..errors import ConfigError, RunFileError
from ..pruning.criteria import CRITERIA
from ..records import FinetuneSummary, IterationRecord, Measured, SearchSummary
from ..runs import RunDir, read_json, releases_folders, write_json
from .finetune import finetune
from .checkpoints import RESUME_OVERRIDES
from .iterative import iterations_seconds
from .prune import prune
from .transtailor import search

log = logging.getLogger("transtailor")

REGULARIZED = ("l2", "l2sp", "delta")
#: TransTailor's row: the search with the paper's importance, at each budget
TRANSTAILOR = "transtailor"


def method_names() -> list[str]:
    """What ``--methods`` accepts: fine-tuning, the regularisers, every registered criterion, TransTailor."""
    return [*FINETUNE_METHODS, *CRITERIA, TRANSTAILOR]


def is_pruning(method: str) -> bool:
    """A row that prunes (at each budget, from its seed's FT run)."""
    return method in CRITERIA or method == TRANSTAILOR


def check_methods(cfg: CompareConfig) -> None:
    unknown = [m for m in cfg.method_list() if m not in method_names()]
    if unknown:
        raise ConfigError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(method_names())}")
    if cfg.cost == "latency":
        soft = [m for m in cfg.method_list() if m in CRITERIA and CRITERIA[m].soft]
        if soft:
            raise ConfigError(f"--method {soft[0]} selects filters by MACs while it trains: leave it out of "
                              "--methods with --cost latency")


@dataclasses.dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    table: str
    run_dir: Path


def run_label(method: str, budget: float | None) -> str:
    """``taylor-30`` for a FLOPs reduction of 0.3, ``taylor-1.30x`` for a speed-up of 1.3."""
    if budget is None:
        return method
    return f"{method}-{budget:.2f}x" if budget > 1.0 else f"{method}-{round(100 * budget)}"


def plan_runs(cfg: CompareConfig) -> list[tuple[str, float | None, int]]:
    """(method, budget or None, seed) for every row of the table, in order."""
    out = []
    for method in cfg.method_list():
        budgets: list[float | None] = list(cfg.budget_list()) if is_pruning(method) else [None]
        for budget in budgets:
            for seed in cfg.seed_list():
                out.append((method, budget, seed))
    return out


def source_of(cfg: CompareConfig, method: str, budget: float | None) -> tuple[float | None, int | None]:
    """Which run holds a row: (the run's budget, the iteration to read, or None for the run's result).

    A pruning run goes in ``--flops-step`` steps, so a smaller budget that is a whole number of
    steps is passed on the way to a larger one: that row is read from the larger run's iteration
    instead of being run again (the steps before it are the same).
    """
    # a measured speed-up is no whole number of steps; a recovered sub-model is only the run's returned one
    if budget is None or cfg.cost == "latency" or cfg.recovery_epochs():
        return budget, None
    largest, step = max(cfg.budget_list()), cfg.flops_step
    assert step is not None  # validated
    k = round(budget / step)
    if budget < largest and k >= 1 and abs(k * step - budget) < 1e-6 and step < largest:
        return largest, k
    return budget, None


def run_config(cfg: CompareConfig, method: str, budget: float | None, seed: int, out: Path,
               start: Path | None = None) -> CommonConfig:
    common = {k: v for k, v in to_dict(cfg).items() if k in {f.name for f in dataclasses.fields(CommonConfig)}}
    common.update(seed=seed, out=str(out), preset=None)
    if method == "ft":
        return FinetuneConfig(**{**common, "regularizer": "none"}, mode="head")
    if method in ("ft-full",) + REGULARIZED:
        return FinetuneConfig(**{**common, "regularizer": "none" if method == "ft-full" else method,
                                 "epochs": cfg.full_epochs or cfg.epochs}, mode="full")
    assert budget is not None and cfg.flops_step is not None
    # every pruning option, and the row's criterion's own options, reach the run
    iterative: dict[str, Any] = {k: v for k, v in to_dict(cfg).items()
                                 if k in {f.name for f in dataclasses.fields(PruningOptions)}}
    importance = method if method in CRITERIA else "beta"
    iterative.update(method_options=method_options_of(importance, cfg.method_options),
                     from_ft=None if start is None else str(start), start=cfg.start)
    # a row is the method's own sub-model: no lower-resolution candidate in its place
    search_options: dict[str, Any] = dict(stop_rule="none", importance=importance, importance_ft=cfg.importance_ft,
                                          resolution="off")
    if cfg.cost == "latency":
        step = cfg.latency_step or cfg.flops_step
        iterative.update(latency_step=step, target_speedup=budget)
        if method in CRITERIA:
            return PruneConfig(**common, **iterative, method=method)
        share = 1.0 - 1.0 / budget
        return SearchConfig(**common, **iterative, **search_options, max_iterations=math.ceil(share / step - 1e-9) + 2)
    iterative["flops_step"] = step = min(cfg.flops_step, budget)
    if method in CRITERIA:
        return PruneConfig(**common, **iterative, method=method, flops_reduction=budget)
    return SearchConfig(**common, **iterative, **search_options, target_flops_reduction=budget,
                        max_iterations=max(1, math.ceil(budget / step - 1e-9)))


@releases_folders
def compare(cfg: CompareConfig) -> CompareResult:
    """Make every run that is not finished yet, then write the table, the JSON and the plot."""
    cfg.validate()
    check_methods(cfg)
    # every criterion's options with their defaults (checked by each criterion), so that the folder's
    # settings record them all
    cfg = dataclasses.replace(cfg, method_options={k: v for name in CRITERIA
                                                   for k, v in method_options_of(name, cfg.method_options).items()})
    root = Path(cfg.out) if cfg.out else Path("runs") / f"compare-{cfg.model.replace(':', '_')}-{Path(cfg.data).name}"
    _check_same_setting(root, cfg)
    RunDir(root).create()  # claimed: a second comparison into this folder stops here
    write_json(root / "compare_config.json", to_dict(cfg))
    rows = []
    for method, budget, seed in plan_runs(cfg):
        run_budget, iteration = source_of(cfg, method, budget)
        out = root / f"{run_label(method, run_budget)}-s{seed}"
        start = _start_run(cfg, root, seed) if is_pruning(method) else None
        _ensure_run(run_config(cfg, method, run_budget, seed, out, start),
                    f"{run_label(method, run_budget)}, seed {seed}")
        rows.append(_row(method, budget, seed, out, iteration))
    write_json(root / "compare.json", rows)
    table = comparison_table(rows, cfg)
    if is_main():
        (root / "compare.md").write_text(table + "\n")
        from ..reporting.plots import draw_comparison_plot

        draw_comparison_plot(rows, root / "compare.png")
    return CompareResult(rows, table, root)


#: options a compare folder may be run again with: more methods, seeds or budgets join the same table,
#: and where the data are and how this machine runs do not change what is computed
#: (``cost`` too: a run's name carries its budget's unit, taylor-30 or taylor-1.30x, so the two costs' runs
#: never share a name, and both start from the same FT runs)
EXTENDABLE = frozenset({"methods", "seeds", "budgets", "cost", "out", "preset", *RESUME_OVERRIDES})


def _check_same_setting(root: Path, cfg: CompareConfig) -> None:
    """Refuse to add runs to a folder whose runs were made with other settings: their rows would be
    reused under a title that names the new ones."""
    path = root / "compare_config.json"
    if not path.is_file():
        return
    try:
        saved = read_json(path)
    except RunFileError:
        return  # unreadable: rewritten below, the runs themselves carry their own config
    now = to_dict(cfg)
    diffs = [f"--{k.replace('_', '-')} {now[k]} (they have {saved[k]})" for k in now
             if k not in EXTENDABLE and k in saved and saved[k] != now[k]]
    if diffs:
        raise ConfigError(f"--out {root} holds runs made with other settings: {'; '.join(diffs)}; use another "
                          "--out for these settings")


def _start_run(cfg: CompareConfig, root: Path, seed: int) -> Path:
    """The run a seed's pruning methods start from (``--start``): the FT or FT-Full row itself, unless
    ``--ft-epochs`` asks for other epochs than the row's."""
    method = cfg.start
    row_epochs = run_config(cfg, method, None, seed, root).epochs
    epochs = row_epochs if cfg.ft_epochs is None else cfg.ft_epochs
    out = root / (f"{method}-s{seed}" if epochs == row_epochs else f"{method}-{epochs}ep-s{seed}")
    _ensure_run(dataclasses.replace(run_config(cfg, method, None, seed, out), epochs=epochs),
                f"{method.upper()} start, seed {seed}")
    return out


def _ensure_run(run_cfg: CommonConfig, label: str) -> None:
    """Make the run unless its ``summary.json`` says it is finished (resuming a cut-off pruning run)."""
    assert run_cfg.out is not None
    out = Path(run_cfg.out)
    if (out / "summary.json").is_file():
        return
    log.info("compare: %s -> %s", label, out)
    if isinstance(run_cfg, FinetuneConfig):
        if out.exists() and is_main():
            shutil.rmtree(out)  # cut off mid-way: fine-tuning starts again
        barrier()
        finetune(run_cfg)
        return
    assert isinstance(run_cfg, (SearchConfig, PruneConfig))
    if (out / "state.json").is_file():
        run_cfg = dataclasses.replace(run_cfg, resume=str(out))
    elif out.exists() and is_main():
        shutil.rmtree(out)  # cut off before its first iteration was written
    barrier()
    if isinstance(run_cfg, SearchConfig):
        search(run_cfg)
    else:
        prune(run_cfg)


def _row(method: str, budget: float | None, seed: int, out: Path, iteration: int | None) -> dict[str, Any]:
    """One table row: a run's summary, or one iteration of a pruning run (a budget passed on the way).

    Wall time and compute are the method's own: the iterations' up to the row's, without the FT it starts
    from, or a fine-tuning's training and validation; neither counts the start-up (loading and decoding the
    data).
    """
    data = read_json(out / "summary.json")
    curve: list[tuple[float, float]] = []
    rec: Measured
    try:
        if (out / "iterations.json").is_file():
            its = [IterationRecord.from_json(r) for r in read_json(out / "iterations.json")]
            kept = its if iteration is None else its[: iteration + 1]
            summary = SearchSummary.from_json(data)
            rec = summary.best if iteration is None else its[iteration]
            wall, reduction = iterations_seconds(kept), rec.flops_reduction
            compute = (summary.compute_ft_full_epochs if iteration is None
                       else None if any(r.compute is None for r in kept) else sum(r.compute or 0.0 for r in kept))
            curve = [(r.flops_reduction, r.test_top1) for r in kept]
        else:
            rec = FinetuneSummary.from_json(data)
            wall, reduction, compute = rec.train_seconds, 0.0, rec.compute_ft_full_epochs
    except RunFileError as exc:
        raise RunFileError(f"{out}: {exc}; remove the folder to run it again") from None
    run = out.name if iteration is None else f"{out.name}/iter_{iteration:03d}"
    return {"method": method, "budget": budget, "seed": seed, "run": run, "flops_reduction": reduction,
            "params": rec.params, "macs": rec.macs, "val_top1": rec.val_top1, "test_top1": rec.test_top1,
            "wall_seconds": wall, "compute": compute, "speedup": rec.speedup_batch, "curve": curve}


def comparison_table(rows: list[dict[str, Any]], cfg: CompareConfig) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(run_label(r["method"], r["budget"]), []).append(r)
    body = [[
        label, str(len(rs)), mean_std([100 * r["flops_reduction"] for r in rs]),
        f"{statistics.mean(r['params'] for r in rs) / 1e6:.2f}" if all(r["params"] for r in rs) else "-",
        mean_std([r["val_top1"] for r in rs if r["val_top1"] is not None]),
        mean_std([r["test_top1"] for r in rs]),
        mean_std([r["speedup"] for r in rs if r.get("speedup")]) if any(r.get("speedup") for r in rs) else "-",
        f"{statistics.mean(r['wall_seconds'] for r in rs):.0f}" if all(r["wall_seconds"] for r in rs) else "-",
        f"{statistics.mean(r['compute'] for r in rs):.1f}" if all(r.get("compute") is not None for r in rs) else "-",
    ] for label, rs in groups.items()]
    start = "FT-Full" if cfg.start == "ft-full" else "FT"
    title = (f"{cfg.model} on {cfg.data}, {cfg.image_size or 'default'} px, {cfg.epochs} epochs per phase"
             + (f" ({cfg.full_epochs} for full fine-tuning)" if cfg.full_epochs else "") + f", seeds {cfg.seeds}")
    note = ("\n\nWall time: each method's own training, scoring and evaluation, without loading and decoding "
            "the data. Compute: the training's arithmetic in epochs of FT-Full on the unpruned model (a head-only "
            "epoch is a third of one)." + (f" Pruning methods and TransTailor start from the {start} model of the "
                                           f"same seed; their time and compute do not include that {start}'s."
                                           if any(r["budget"] is not None for r in rows) else ""))
    if cfg.cost == "latency":
        note += (f" Budgets are measured speed-ups at batch {cfg.latency_batch} on the latency target; the "
                 "speed-up column is each run's own measurement against its FT model.")
    return title + "\n\n" + markdown_table(["method", "seeds", "FLOPs red. %", "M params", "val top-1 %",
                                            "test top-1 %", "speed-up", "wall s", "compute"], body) + note
