"""The iterative prune-and-fine-tune loop shared by the TransTailor search and the pruning baselines.

    FT (new head) -> best sub-model
    repeat:
        score every filter (the method's own criterion: TransTailor's β, L1, Taylor, ...)
        remove the lowest-scored filters until the step's share of the original FLOPs is gone
        fine-tune (with the importance attached, for TransTailor)
        if the stop rule says it fell too far: stop, else this sub-model becomes the best
    until the FLOPs target, the iteration limit or the stop rule

Every iteration writes ``iter_NNN/`` (model, scores, pruning record) and ``state.json`` before the
next begins; ``--resume`` continues from the last complete iteration, seeding each iteration from
(seed, iteration) alone so that a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
import torch.nn as nn

from ..config import IterativeConfig, from_dict, method_option_fields, with_legacy_defaults
from ..data.sampling import reseed_loader
from ..distributed import barrier, is_main, world_size
from ..errors import ConfigError, RunFileError
from ..models.serialize import load_bundle, save_model
from ..models.zoo import ModelBundle
from ..models.timing import TimingSetup
from ..pruning import GateSite, find_gate_sites
from ..pruning.criteria import Criterion, Scores, ScoreContext, options_dict, per_layer
from ..pruning.pruner import PruneRecord, prune_to_budget
from ..pruning.importance_ft import attach_importance
from ..records import IterationRecord, RunState, SearchSummary
from ..runs import MODEL_FILE, PREDICTIONS_FILE, RunDir, atomic_write, read_json, releases_folders, write_json
from ..training import FitResult, seed_everything
from ..training.distill import Distiller
from ..training.predictions import Evaluated
from .budget import Budget, Settled, StepBudget, check_round_to, settle_table_target
from .common import (Setup, final_scores, measure, measured_speedup, prepare, require_classes, run_facts,
                     timing_setup, write_predictions)
from .finetune import finetune_phase
from .soft import soft_prune_phase
from .stopping import Stops

log = logging.getLogger("transtailor")

I = TypeVar("I", bound=IterativeConfig)

STATE_FILE = "state.json"
ITERATIONS_FILE = "iterations.json"


@dataclass
class Plan:
    """What a method plugs into the loop."""

    method: str
    criterion: Criterion
    step: float
    #: when the loop ends: the accuracy stop rule (None for the pruning baselines), the FLOPs or speed-up
    #: target, the iteration limit
    stops: Stops
    scope: str = "global"  # rank across layers, or each site's scores divided by their mean ("layer")
    importance_ft: str = "none"  # how the scores enter fine-tuning (the search's --importance-ft)
    flops_aware: bool = False  # rank channels by score per MAC saved (Gate Decorator)


@dataclass
class SearchResult:
    bundle: ModelBundle
    summary: SearchSummary
    iterations: list[IterationRecord]
    run_dir: Path

    @property
    def model(self) -> nn.Module:
        return self.bundle.model


def iteration_dir(run: RunDir, it: int) -> Path:
    return run.path / f"iter_{it:03d}"


def _seed_iteration(s: Setup[IterativeConfig], it: int) -> None:
    seed = s.cfg.seed * 1000 + it
    seed_everything(seed)
    reseed_loader(s.data.train_loader, seed)


def _meta(s: Setup[IterativeConfig], extra: dict[str, Any]) -> dict[str, Any]:
    return {"classes": s.data.classes, "image_size": s.image_size, "crop_pct": s.cfg.crop_pct, **extra}


@dataclass
class _Loop:
    """What every iteration of one run shares."""

    plan: Plan
    budget: Budget
    timing: TimingSetup | None
    original: nn.Module | None  # the FT model: the reference of every measured speed-up


def _evaluate_and_measure(s: Setup[IterativeConfig], it: int, phase: str, macs0: int | None,
                          fitted: FitResult | None = None, timing: TimingSetup | None = None,
                          original: nn.Module | None = None, reuse_val: bool = True
                          ) -> tuple[IterationRecord, Evaluated]:
    """The record of iteration ``it``: val and test scores (``fitted``'s kept epoch with ``reuse_val``),
    MACs, params, latency and, against ``original``, the measured speed-up; and the predictions
    behind the scores."""
    scores, evaluated = final_scores(s, s.bundle.model, fitted, reuse_val=reuse_val)
    cost = measure(s.bundle.model, s.image_size, setup=timing, reference=original, rounds=s.cfg.latency_rounds)
    return IterationRecord(iteration=it, phase=phase, **scores, **cost,
                           flops_reduction=1.0 - cost["macs"] / (macs0 or cost["macs"]),
                           best_epoch=None if fitted is None else fitted.best_epoch,
                           train_seconds=None if fitted is None else fitted.seconds), evaluated


@releases_folders
def run_iterative(cfg: I, command: str, make_plan: Callable[[I], Plan], model: nn.Module | None = None) -> SearchResult:
    """Run (or with ``cfg.resume``, continue) the loop; return the best sub-model."""
    restoring = False
    if cfg.resume:
        restoring = RunDir(cfg.resume).file(STATE_FILE).is_file()  # else killed during FT: it starts over
        cfg = _resume_config(type(cfg), cfg)
    if cfg.cost == "latency" and world_size() > 1:
        raise ConfigError("--cost latency runs in one process: measure its latency table in one process "
                          "first (it is cached), or use --cost macs under torchrun")
    cfg.validate()
    plan = make_plan(cfg)  # refuses what the criterion cannot do before anything is written
    cfg = dataclasses.replace(cfg, method_options=options_dict(plan.criterion))  # recorded with its defaults
    s = prepare(cfg, command, model, overwrite=bool(cfg.resume), restoring=restoring,
                check=functools.partial(check_round_to, cfg))
    cfg = s.cfg  # with the resolved image size
    run = s.run
    timing = timing_setup(cfg, s.device) if cfg.latency else None
    ft_epochs = cfg.epochs if cfg.ft_epochs is None else cfg.ft_epochs
    ift_epochs = cfg.epochs if cfg.finetune_epochs is None else cfg.finetune_epochs
    state = _load_state(run) if restoring else None
    if state is not None:
        _restore_model(s, state.completed)
        original = load_bundle(iteration_dir(run, 0) / MODEL_FILE).model.to(s.device) if timing else None
        iterations = _committed_iterations(run, state.completed)
    else:
        run.reset_metrics()
        _seed_iteration(s, 0)
        t0 = time.perf_counter()
        # with --from-ft, prepare() has loaded the FT model
        fitted = None if cfg.from_ft else finetune_phase(s, "head", ft_epochs, "ft", {"iteration": 0})
        seconds = time.perf_counter() - t0
        rec, evaluated = _evaluate_and_measure(s, 0, "ft", None, fitted, timing)
        rec.seconds["finetune"] = seconds
        if fitted is None:
            rec.from_ft = str(cfg.from_ft)
        original = copy.deepcopy(s.bundle.model) if timing else None
        state = RunState(completed=0, best=0, macs_original=rec.macs)
        iterations = [rec]
        _commit_iteration(s, 0, rec, None, None, evaluated, state, iterations)
        _log_iteration(rec)
    macs0 = state.macs_original
    stops = plan.stops
    loop = _Loop(plan, Budget(cfg, plan.step, stops.target_flops_reduction, stops.target_speedup, plan.flops_aware,
                              timing, s.device), timing, original)

    it = state.completed
    while state.stopped is None:
        it += 1
        state.stopped = stops.before(it, iterations[-1])
        if state.stopped is not None:
            break
        _seed_iteration(s, it)
        rec, saved, pruning, evaluated = _iteration(s, loop, it, macs0, ift_epochs, iterations)
        stops.record(state, iterations, rec)
        _commit_iteration(s, it, rec, saved, pruning, evaluated, state, iterations)
        _log_iteration(rec)
    write_json(run.file(STATE_FILE), state.to_json())
    best = load_bundle(iteration_dir(run, state.best) / MODEL_FILE)
    best_dir = run.path / "best"
    atomic_write(best_dir / MODEL_FILE,
                 lambda fh: fh.write((iteration_dir(run, state.best) / MODEL_FILE).read_bytes()), binary=True)
    best_rec = iterations[state.best]
    summary = SearchSummary(method=plan.method, best_iteration=state.best, stopped=state.stopped,
                            iterations=len(iterations) - 1, macs_original=macs0, best=best_rec, facts=run_facts(s),
                            method_seconds=iterations_seconds(iterations), criterion=plan.criterion.name,
                            wall_seconds=time.perf_counter() - s.started)
    run.write_summary(summary.to_json())
    if is_main():
        _plots(run)
    barrier()
    log.info("%s done: best sub-model is iteration %d (val top-1 %s, test top-1 %.2f%%, %.1f%% fewer "
             "FLOPs), stopped by %s -> %s", command, state.best,
             "-" if best_rec.val_top1 is None else f"{best_rec.val_top1:.2f}%", best_rec.test_top1,
             100 * best_rec.flops_reduction, state.stopped, best_dir)
    best.model.to(s.device)
    return SearchResult(best, summary, iterations, run.path)


def iterations_seconds(iterations: list[IterationRecord]) -> float:
    """Wall time of the given iterations' phases (FT for iteration 0)."""
    return sum(r.seconds_total for r in iterations)


#: a pruned copy of the model, its pruning record and the surviving channels' scores
_Pruned = tuple[nn.Module, PruneRecord, dict[str, torch.Tensor]]


def _iteration(s: Setup[IterativeConfig], loop: _Loop, it: int, macs0: int, ift_epochs: int,
               iterations: list[IterationRecord]) -> tuple[IterationRecord, dict, dict, Evaluated]:
    cfg, model, plan = s.cfg, s.bundle.model, loop.plan
    teacher = copy.deepcopy(model) if cfg.distill == "previous" else None  # before this step prunes it
    sites = find_gate_sites(model, min(s.image_size, 64), exclude=(s.bundle.head,))
    t = time.perf_counter()
    budget = loop.budget.for_step(model, sites, loop.original, iterations)
    seconds_budget = time.perf_counter() - t
    settled: Settled[_Pruned] | None = None
    if plan.criterion.soft:  # the criterion prunes while it trains (SFP)
        t = time.perf_counter()
        record, fitted = soft_prune_phase(s, it, sites, int(budget.target), ift_epochs,
                                          score=lambda: _score(s, plan, it, sites).scores)
        reuse_val = False  # scored before the filters were removed
        times = {"finetune": time.perf_counter() - t}
        scored = Scores(scores={})
    else:
        scored = _score(s, plan, it, sites)
        times = dict(scored.seconds)
        t = time.perf_counter()
        if budget.time_plan is not None and cfg.latency_tries > 1 and loop.timing is not None:
            settled = _settle_step(s, loop, sites, scored.scores, budget)
            model, record, kept = settled.made
            s.bundle.model = model  # the nearest try is the step: it is not pruned again
            budget = dataclasses.replace(budget, target=settled.target * budget.time_plan.total0)
        else:
            record, kept = _prune(s, loop, model, sites, scored.scores, budget)
        times["prune"] = time.perf_counter() - t + seconds_budget
        t = time.perf_counter()
        attached = attach_importance(model, sites, kept, plan.importance_ft)
        try:
            fitted = finetune_phase(s, "full", ift_epochs, f"finetune{it}", {"iteration": it},
                                    criterion=_distiller(s, teacher))
            reuse_val = attached.gates is None  # folding changes the arithmetic: score the folded model anew
            attached.finish(model)
        finally:
            attached.remove_hooks()  # process-wide: never left behind by a failed phase
        times["finetune"] = time.perf_counter() - t
    t = time.perf_counter()
    rec, evaluated = _evaluate_and_measure(s, it, plan.method, macs0, fitted, loop.timing, loop.original, reuse_val)
    times["eval"] = time.perf_counter() - t
    rec.seconds = times
    rec.filters_removed = sum(record.removed.values())
    pruning = {"macs_before": record.macs_before, "macs_after": record.macs_after, "removed": record.removed,
               "remaining": record.remaining, "removed_channels": record.removed_channels,
               "cost": {"unit": record.cost_unit, "before": record.cost_before, "after": record.cost_after,
                        "target": budget.target}, "round_to": loop.budget.round_to}
    if settled is not None and budget.time_plan is not None:
        pruning["tries"] = {"relative_time_wanted": budget.time_plan.r_want,
                            "table_and_measured_time": [list(p) for p in settled.tries]}
    return rec, {"scores": {k: v.cpu() for k, v in scored.scores.items()}, **scored.saved}, pruning, evaluated


def _prune(s: Setup[IterativeConfig], loop: _Loop, model: nn.Module, sites: list[GateSite],
           scores: dict[str, torch.Tensor], budget: StepBudget) -> tuple[PruneRecord, dict[str, torch.Tensor]]:
    """Remove ``model``'s lowest-scored channels down to the step's budget."""
    cfg = s.cfg
    return prune_to_budget(model, sites, scores, budget.cost, budget.target, s.image_size, s.bundle.head,
                           min_channels=cfg.min_channels, cost_aware=budget.cost_aware,
                           max_fraction=cfg.max_layer_fraction, round_to=loop.budget.round_to,
                           knapsack=budget.knapsack)


def _settle_step(s: Setup[IterativeConfig], loop: _Loop, sites: list[GateSite], scores: dict[str, torch.Tensor],
                 budget: StepBudget) -> Settled[_Pruned]:
    """The latency step's table target, found by pruning copies of the model and timing them, with the
    copy pruned to it (and its record and surviving scores)."""
    plan, setup, original = budget.time_plan, loop.timing, loop.original
    assert plan is not None and setup is not None and original is not None
    rounds = min(3, s.cfg.latency_rounds)

    def time_at(t: float) -> tuple[float, _Pruned]:
        trial = copy.deepcopy(s.bundle.model)
        record, kept = _prune(s, loop, trial, sites, scores, dataclasses.replace(budget, target=t * plan.total0))
        r = 1.0 / measured_speedup(trial, original, s.image_size, setup, rounds)
        log.info("latency step: table at %.3f of the original's -> measured time %.3f (%.3f wanted)",
                 t, r, plan.r_want)
        return r, (trial, record, kept)

    return settle_table_target(plan, budget.target / plan.total0, time_at, s.cfg.latency_tries)


def _score(s: Setup[IterativeConfig], plan: Plan, it: int, sites: list[GateSite]) -> Scores:
    """The criterion's scores of this iteration (per layer with ``--scope layer``), timed."""
    ctx = ScoreContext(s.bundle.model, sites, s.data.train_loader, s.device, seed=s.cfg.seed * 1000 + it,
                       log=lambda rec: s.run.log_metrics({"iteration": it, **rec}))
    t = time.perf_counter()
    scored = plan.criterion(ctx)
    seconds = scored.seconds or {"score": time.perf_counter() - t}
    scores = per_layer(scored.scores) if plan.scope == "layer" else scored.scores
    return Scores(scores, scored.saved, seconds)


def _distiller(s: Setup[IterativeConfig], previous: nn.Module | None) -> Distiller | None:
    """The ``--distill`` criterion for the fine-tuning after a pruning step (None: plain cross-entropy)."""
    cfg = s.cfg
    if cfg.distill == "none":
        return None
    if previous is not None:
        teacher = previous
    else:
        saved = load_bundle(cfg.distill)
        require_classes(saved.meta, s.data.classes, f"--distill {cfg.distill}")
        teacher = saved.model.to(s.device)
    return Distiller(teacher, cfg.distill_weight, cfg.distill_temperature)


def _commit_iteration(s: Setup[IterativeConfig], it: int, rec: IterationRecord, saved: dict | None,
                      pruning: dict | None, evaluated: Evaluated, state: RunState,
                      iterations: list[IterationRecord]) -> None:
    """Write the iteration's files, then the list, then the state: ``state.json`` is the commit.

    A kill between any two writes leaves the state of the last committed iteration; resume trusts
    only that (:func:`_committed_iterations`) and redoes what came after.
    """
    folder = iteration_dir(s.run, it)
    save_model(folder / MODEL_FILE, s.bundle, _meta(s, {"iteration": it, "macs": rec.macs, "params": rec.params}))
    if is_main():  # verified on resume: a file cut short or changed later is not trusted
        state.checksums[f"{folder.name}/{MODEL_FILE}"] = _sha256(folder / MODEL_FILE)
    if saved is not None:
        atomic_write(folder / "importance.pt", lambda fh: torch.save(saved, fh), binary=True)
    if pruning is not None:
        write_json(folder / "pruning.json", pruning)
    write_predictions(folder / PREDICTIONS_FILE, evaluated)
    write_json(folder / "metrics.json", rec.to_json())
    s.run.log_metrics({"phase": "iteration", **rec.to_json()})
    write_json(s.run.file(ITERATIONS_FILE), [r.to_json() for r in iterations])
    write_json(s.run.file(STATE_FILE), state.to_json())
    barrier()  # other ranks read these files back


def _log_iteration(rec: IterationRecord) -> None:
    log.info("iteration %d: val top-1 %s, test top-1 %.2f%%, %.1f M MACs (%.1f%% fewer), %.2f M params%s",
             rec.iteration, "-" if rec.val_top1 is None else f"{rec.val_top1:.2f}%", rec.test_top1,
             rec.macs / 1e6, 100 * rec.flops_reduction, rec.params / 1e6, "" if rec.best else " (not kept)")


# options a resumed run may take anew: where the data are and how this machine runs (not what is computed)
RESUME_OVERRIDES = ("data", "data_root", "device", "workers", "threads", "latency_cache")


def _resume_config(cls: type[I], cfg: I) -> I:
    """The run's own configuration. An option given with ``--resume`` that differs from it is refused,
    except those in :data:`RESUME_OVERRIDES` (e.g. ``--data`` after the images moved), which are taken.
    An option given at its default value cannot be told from one not given, and is ignored."""
    assert cfg.resume is not None
    run = RunDir(cfg.resume)
    if not run.file("config.yaml").is_file():
        raise ConfigError(f"--resume {cfg.resume}: no search or prune run there (config.yaml is missing)")
    saved = with_legacy_defaults({k: v for k, v in run.read_config().items() if k != "command"}, cls)
    # runs written before the criteria registry stored every criterion's options: keep the run's own
    owner, fields = saved.get("method", saved.get("importance")), method_option_fields()
    saved = {k: v for k, v in saved.items() if k not in fields or fields[k][0] == owner}
    saved.update(out=str(run.path), resume=str(run.path))
    try:
        theirs = from_dict(cls, saved)
    except ConfigError as exc:
        raise ConfigError(f"--resume {cfg.resume}: that run was not made by this command ({exc})") from None
    defaults = cls()
    taken, conflicts = {}, []
    for f in dataclasses.fields(cls):
        mine = getattr(cfg, f.name)
        if f.name in ("resume", "out") or mine == getattr(defaults, f.name) or _same(mine, getattr(theirs, f.name)):
            continue
        if f.name in RESUME_OVERRIDES:
            taken[f.name] = mine
        else:
            conflicts.append(f"--{f.name.replace('_', '-')} {mine} (the run has {getattr(theirs, f.name)})")
    if conflicts:
        raise ConfigError(f"--resume {cfg.resume} keeps the run's own options; drop {'; '.join(conflicts)}, or "
                          "start a new run")
    for k, v in taken.items():
        log.info("resuming with --%s %s (the run had %s)", k.replace("_", "-"), v, getattr(theirs, k))
    return dataclasses.replace(theirs, **taken) if taken else theirs


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _same(a: Any, b: Any) -> bool:
    """Equal values, or two names of one existing file or folder (runs store paths absolute)."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and a and b and Path(a).exists():
        return Path(a).resolve() == Path(b).resolve()
    return False


def _load_state(run: RunDir) -> RunState:
    """The saved state of a resumed run, with any iteration after its last complete one cleared away."""
    data = read_json(run.file(STATE_FILE))  # a truncated or missing file says so itself
    try:
        state = RunState.from_json(data)
    except RunFileError:
        raise RunFileError(f"{run.file(STATE_FILE)} is not a run state TransTailor wrote; start again with a new "
                           "--out") from None
    done = state.completed
    for name, digest in state.checksums.items():
        it = int(name.split("/")[0].split("_")[1])
        if it <= done and (not run.file(name).is_file() or _sha256(run.file(name)) != digest):
            raise RunFileError(f"{run.file(name)} is missing or changed since iteration {it} was committed (its "
                               "checksum differs): restore it, or start the run again with a new --out")
    for tmp in run.path.rglob(".*.tmp"):  # a write cut off by a kill
        if is_main():
            tmp.unlink(missing_ok=True)
    for stale in run.path.glob("iter_*"):  # an iteration that did not complete
        if int(stale.name.split("_")[1]) > done and is_main():
            shutil.rmtree(stale)
    kept = [r for r in run.metrics() if r.get("iteration", 0) <= done]
    atomic_write(run.file("metrics.jsonl"), lambda fh: fh.writelines(_jsonl(r) for r in kept))
    log.info("resuming %s after iteration %d", run.path, done)
    return state


def _committed_iterations(run: RunDir, completed: int) -> list[IterationRecord]:
    """Iterations 0..``completed`` from their own ``metrics.json``, and ``iterations.json`` rewritten to them.

    ``iterations.json`` may hold an iteration that was written before a kill but never committed.
    """
    out = []
    for it in range(completed + 1):
        path = iteration_dir(run, it) / "metrics.json"
        try:
            rec = IterationRecord.from_json(read_json(path))
            if rec.iteration != it:
                raise ValueError("not this iteration's record")
        except (RunFileError, ValueError):
            raise ConfigError(f"--resume {run.path}: iteration {it} is committed but {path} cannot be read; "
                              "start the run again with a new --out") from None
        out.append(rec)
    if is_main():
        write_json(run.file(ITERATIONS_FILE), [r.to_json() for r in out])
    return out


def _restore_model(s: Setup[IterativeConfig], it: int) -> None:
    saved = load_bundle(iteration_dir(s.run, it) / MODEL_FILE, model=s.bundle.model)
    s.bundle.model = saved.model.to(s.device)


def _jsonl(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record) + "\n"


def _plots(run: RunDir) -> None:
    try:
        from ..reporting.plots import draw_search_plots
    except ImportError:  # matplotlib is a dependency; a broken install should not lose the run
        log.warning("matplotlib is unavailable: no plots drawn")
        return
    draw_search_plots(run.path)

