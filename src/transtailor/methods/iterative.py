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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
import torch.nn as nn

from ..config import RECOVERY_OPTIONS, IterativeConfig, to_dict
from ..config.commands import DISTILL_CHOICES
from ..data.sampling import reseed_loader
from ..distributed import barrier, is_main, world_size
from ..errors import ConfigError
from ..models.serialize import load_bundle
from ..models.zoo import ModelBundle
from ..models.timing import TimingSetup
from ..pruning import GateSite, find_gate_sites
from ..pruning.criteria import Criterion, Scores, ScoreContext, options_dict, per_layer
from ..pruning.pruner import PruneRecord, prune_to_budget
from ..pruning.importance_ft import attach_importance
from ..models.measure import count_macs_params
from ..records import IterationRecord, Reference, RunState, SearchSummary
from ..runs import CONFIG_FILE, RECORD_FILE, RECOVERED_DIR, RESOLUTION_DIR, SUMMARY_FILE, RunDir, read_json, \
    releases_folders
from ..training import FitResult, seed_everything
from ..training.compute import epochs_equivalent
from ..training.distill import Distiller
from ..training.predictions import Evaluated
from .budget import Budget, Settled, StepBudget, check_round_to, settle_table_target
from .checkpoints import BEST_DIR, ENDS, Checkpoints
from .measuring import measure, measured_speedup, timing_setup
from .results import final_scores, run_facts
from .setup import Setup, prepare, require_classes, saved_start
from .finetune import finetune_phase
from .resolution import MIN_SIZE, candidate_key, choose_size, finished_candidate, returns_candidate, \
    train_candidate
from .soft import soft_prune_phase
from .stopping import Stops

log = logging.getLogger("transtailor")

I = TypeVar("I", bound=IterativeConfig)


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


def _seed_iteration(s: Setup[IterativeConfig], it: int) -> None:
    seed = s.cfg.seed * 1000 + it
    seed_everything(seed)
    reseed_loader(s.data.train_loader, seed)


def _meta(s: Setup[IterativeConfig], rec: IterationRecord) -> dict[str, Any]:
    """What a saved sub-model carries besides its weights."""
    return {"classes": s.data.classes, "image_size": s.image_size, "crop_pct": s.cfg.crop_pct,
            "iteration": rec.iteration, "macs": rec.macs, "params": rec.params}


@dataclass
class _Loop:
    """What every iteration of one run shares."""

    plan: Plan
    budget: Budget
    timing: TimingSetup | None
    original: nn.Module | None  # the unpruned start model: the reference of every measured speed-up
    ckpt: Checkpoints
    _start: nn.Module | None = None
    _saved_teacher: tuple[str, ModelBundle] | None = None  # (its path, its model)
    saved_reference: ModelBundle | None = None  # --reference, loaded when the run starts

    def start_model(self, s: Setup[IterativeConfig]) -> nn.Module:
        """The unpruned model pruning started from (iteration 0), loaded once."""
        if self.original is not None:
            return self.original
        if self._start is None:
            self._start = self.ckpt.load_model(0).model.to(s.device)
        return self._start

    def saved_teacher(self, s: Setup[IterativeConfig]) -> ModelBundle:
        """``--distill FILE_OR_RUN``'s model, checked against the data's classes, loaded once."""
        path = s.cfg.distill_choice()  # the recovery's may differ from the steps' (recovery_options)
        if self._saved_teacher is None or self._saved_teacher[0] != path:
            self._saved_teacher = path, _load_saved(s, path, "--distill")
        return self._saved_teacher[1]

    def teacher(self, s: Setup[IterativeConfig], before_step: nn.Module | None) -> nn.Module | None:
        """The ``--distill`` teacher of a fine-tuning: the model before this step (``previous``; the start model
        when ``before_step`` is None, as in the recovery), the start model, a saved model, or None."""
        how = s.cfg.distill_choice()
        if how == "none":
            return None
        if how == "previous" and before_step is not None:
            return before_step
        if how in ("previous", "start"):
            return self.start_model(s)
        return self.saved_teacher(s).model


def _load_saved(s: Setup[IterativeConfig], path: str, flag: str) -> ModelBundle:
    """A saved model or run folder named by ``flag``, checked against the data's classes, on the run's device."""
    saved = load_bundle(path)
    require_classes(saved.meta, s.data.classes, f"{flag} {path}")
    saved.model.to(s.device)
    return saved


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
    restoring, recovered_before, new_end = False, None, False
    resumed_run: RunDir | None = None  # a finished run keeps its lower-resolution candidate if it is the same
    if cfg.resume:
        restoring = Checkpoints(RunDir(cfg.resume)).has_state()  # else killed during FT: it starts over
        recovered_before = _finished_recovery(RunDir(cfg.resume))
        resumed_run = RunDir(cfg.resume)
        saved = RunDir(cfg.resume).read_config() if RunDir(cfg.resume).file(CONFIG_FILE).is_file() else {}
        cfg = Checkpoints.resume_config(type(cfg), cfg)
        new_end = any(getattr(cfg, k, None) != saved.get(k) for k in ENDS if k in saved)
    if cfg.start is None and cfg.from_ft:  # a saved start model is what it was trained as
        cfg = dataclasses.replace(cfg, start=saved_start(cfg.from_ft))
    cfg = cfg.resolved()  # the defaults that depend on other options are recorded as what they were
    if cfg.cost == "latency" and world_size() > 1:
        raise ConfigError("--cost latency runs in one process: measure its latency table in one process "
                          "first (it is cached), or use --cost macs under torchrun")
    cfg.validate()
    plan = make_plan(cfg)  # refuses what the criterion cannot do before anything is written
    cfg = dataclasses.replace(cfg, method_options=options_dict(plan.criterion))  # recorded with its defaults
    s = prepare(cfg, command, model, overwrite=bool(cfg.resume), restoring=restoring,
                check=functools.partial(check_round_to, cfg))
    cfg = s.cfg  # with the resolved image size
    run, ckpt = s.run, Checkpoints(s.run)
    timing = timing_setup(cfg, s.device) if cfg.latency else None
    reference = _load_reference(s)  # a wrong file is refused now, not after the steps
    ft_epochs = cfg.start_epochs()
    ift_epochs = cfg.epochs if cfg.finetune_epochs is None else cfg.finetune_epochs
    if restoring:
        state, iterations = ckpt.resume()
        if new_end:  # a deeper target or more iterations: prune on from the last step
            _going_on(state, iterations, plan.stops, command, run.path)
            state.stopped = None
        if state.stopped is not None:  # finished: what it returns is known before anything runs
            _returned(cfg, state, command, run.path)
        s.bundle.model = ckpt.load_model(state.completed, model=s.bundle.model).model.to(s.device)
        original = ckpt.load_model(0).model.to(s.device) if timing else None
    else:
        run.reset_metrics()
        _seed_iteration(s, 0)
        t0 = time.perf_counter()
        # with --from-ft, prepare() has loaded the start model
        mode, phase = ("head", "ft") if cfg.start == "ft" else ("full", "ft_full")
        fitted = None if cfg.from_ft else finetune_phase(s, mode, ft_epochs, phase, {"iteration": 0})
        seconds = time.perf_counter() - t0
        rec, evaluated = _evaluate_and_measure(s, 0, phase, None, fitted, timing)
        rec.seconds["finetune"] = seconds
        rec.compute = 0.0 if fitted is None else epochs_equivalent(ft_epochs, rec.macs, rec.macs, mode=mode)
        if fitted is None:
            rec.from_ft = str(cfg.from_ft)
        original = copy.deepcopy(s.bundle.model) if timing else None
        state = RunState(completed=0, best=0, macs_original=rec.macs)
        iterations = [rec]
        ckpt.commit(0, rec, s.bundle, _meta(s, rec), state, iterations, evaluated)
        _log_iteration(rec)
    macs0 = state.macs_original
    stops = plan.stops
    loop = _Loop(plan, Budget(cfg, plan.step, stops.target_flops_reduction, stops.target_speedup, plan.flops_aware,
                              timing, s.device), timing, original, ckpt, saved_reference=reference)

    it = state.completed
    while state.stopped is None:
        it += 1
        state.stopped = stops.before(it, iterations[-1])
        if state.stopped is not None:
            break
        _seed_iteration(s, it)
        rec, saved, pruning, evaluated = _iteration(s, loop, it, macs0, ift_epochs, iterations)
        stops.record(state, iterations, rec)
        ckpt.commit(it, rec, s.bundle, _meta(s, rec), state, iterations, evaluated, scores=saved, pruning=pruning)
        _log_iteration(rec)
    ckpt.write_state(state)
    returned = _returned(cfg, state, command, run.path)
    best_rec, before_recovery, seconds = iterations[returned], None, iterations_seconds(iterations)
    compute = sum(r.compute or 0.0 for r in iterations)
    s = dataclasses.replace(s, cfg=cfg.for_recovery())  # the recovery, and the candidate trained like it
    cfg = s.cfg
    if cfg.recovery_epochs():
        before_recovery = best_rec.test_top1
        if recovered_before is not None and recovered_before[0] == _recovery_key(to_dict(cfg), returned):
            best_rec = recovered_before[1]  # a finished run resumed for another --reference: kept as it is
        else:
            best_rec = _recover(s, loop, returned, macs0)
        seconds += best_rec.seconds_total
        compute += best_rec.compute or 0.0
        best_folder = run.path / RECOVERED_DIR
    else:
        best_folder = ckpt.folder(returned)
    candidate = _resolution_candidate(s, loop, macs0, resumed_run)
    returned_candidate = candidate is not None and returns_candidate(candidate, best_rec)
    if candidate is not None:
        seconds += candidate.seconds_total
        compute += candidate.compute or 0.0
        if returned_candidate:
            best_rec, best_folder = candidate, run.path / RESOLUTION_DIR
    best = ckpt.keep_best(best_folder)
    best_dir = run.path / BEST_DIR
    summary = SearchSummary(method=plan.method, best_iteration=returned, stopped=state.stopped,
                            iterations=len(iterations) - 1, macs_original=macs0, best=best_rec, facts=run_facts(s),
                            method_seconds=seconds, criterion=plan.criterion.name,
                            test_top1_before_recovery=before_recovery, compute_ft_full_epochs=compute,
                            reference=_reference(s, loop, iterations[0]), resolution=candidate,
                            returned=RESOLUTION_DIR if returned_candidate else None,
                            wall_seconds=time.perf_counter() - s.started)
    run.write_summary(summary.to_json())
    if is_main():
        _plots(run)
    barrier()
    what = (f"the start model at {candidate.extra['image_size']} px (--resolution)" if returned_candidate and
            candidate is not None else f"sub-model iteration {returned}")
    log.info("%s done: returned %s (val top-1 %s, test top-1 %.2f%%, %.1f%% fewer FLOPs), stopped by %s -> %s",
             command, what, "-" if best_rec.val_top1 is None else f"{best_rec.val_top1:.2f}%", best_rec.test_top1,
             100 * best_rec.flops_reduction, state.stopped, best_dir)
    best.model.to(s.device)
    return SearchResult(best, summary, iterations, run.path)


def _resolution_candidate(s: Setup[IterativeConfig], loop: _Loop, macs0: int,
                          resumed: RunDir | None) -> IterationRecord | None:
    """``--resolution``: the start model trained at a lower input size on the recovery's schedule, without a
    teacher (:mod:`.resolution`), or the one a resumed finished run trained alike; None when off or when no size
    reaches the target."""
    cfg = s.cfg
    if cfg.resolution_choice() == "off":
        return None
    key = candidate_key(cfg)
    kept = finished_candidate(resumed, key) if resumed is not None else None
    if kept is not None:
        return kept
    start = loop.start_model(s)
    choice = choose_size(cfg, start, s.image_size, loop.timing)
    if choice.size is None:
        log.warning("resolution: no input size down to %d px reaches the target (%s: %s); no lower-resolution "
                    "candidate", MIN_SIZE, choice.priced_by,
                    ", ".join(f"{r} px {v:.2f}" for r, v in choice.tried) or "-")
        return None
    return train_candidate(s, loop.ckpt, start, choice, key, macs0, loop.timing)


def _recovery_options(config: dict[str, Any]) -> dict[str, Any]:
    """How a recovery trains besides its length (:data:`RECOVERY_OPTIONS`), from a config (a run's config.yaml:
    an option it lacks, written before the option existed, had its default)."""
    defaults = {f.name: f.default for f in dataclasses.fields(IterativeConfig)}
    own = config.get("recovery_options") or {}  # where the recovery's differ from the steps'
    return {k: own.get(k, config.get(k, defaults[k])) for k in RECOVERY_OPTIONS}


def _recovery_key(config: dict[str, Any], iteration: int) -> tuple[Any, ...]:
    """What makes two recoveries the same: their length, their training options, the iteration recovered."""
    return int(config.get("recover_epochs") or 0), tuple(sorted(_recovery_options(config).items())), iteration


def _finished_recovery(run: RunDir) -> tuple[tuple[Any, ...], IterationRecord] | None:
    """A finished run's recovery: (its :func:`_recovery_key`, its record), or None when the run did not finish
    (no summary) or recovered nothing."""
    recovered = run.path / RECOVERED_DIR / RECORD_FILE
    if not (run.file(SUMMARY_FILE).is_file() and recovered.is_file() and run.file(CONFIG_FILE).is_file()):
        return None
    rec = IterationRecord.from_json(read_json(recovered))
    # the record says how it was trained (one written before it did: as config.yaml says)
    config = {**run.read_config(), "recovery_options": rec.extra.get("recovery", {})}
    return _recovery_key(config, rec.iteration), rec


def _going_on(state: RunState, iterations: list[IterationRecord], stops: Stops, command: str,
              path: Path) -> None:
    """Check that a run resumed with a new target or iteration limit can prune on from its last step: refused
    when the run is at or past the new end already, or was ended by something a new end does not undo."""
    if state.stopped is not None and state.stopped not in ENDS:  # an end's stop reason is its option's name
        raise ConfigError(f"--resume {path}: this run ended by '{state.stopped}' after iteration {state.completed}, "
                          "not at its target: a new target does not continue it; start a new run (a stop rule ends "
                          "a search before its target unless --stop-rule none)")
    end = stops.before(state.completed + 1, iterations[-1])
    if end is not None:
        raise ConfigError(f"--resume {path}: iteration {state.completed} is at or past the new end already ({end}); "
                          f"pick a less pruned sub-model of the run with 'transtailor {command.split('-')[0]} "
                          f"--resume {path} --return-iteration N' instead")
    log.info("pruning on after iteration %d to the new end (the steps so far are kept)", state.completed)


def _load_reference(s: Setup[IterativeConfig]) -> ModelBundle | None:
    """``--reference``'s model, refused unless it was trained on this data's classes at this input size."""
    path = s.cfg.reference
    if path is None:
        return None
    saved = _load_saved(s, path, "--reference")
    size = saved.meta.get("image_size")
    if size is not None and size != s.image_size:
        raise ConfigError(f"--reference {path} was trained at {size} px and this run at {s.image_size} px: it is "
                          "scored on this run's images, so give a model of the same size (compare speeds at "
                          "their own sizes with 'transtailor benchmark')")
    return saved


def _returned(cfg: IterativeConfig, state: RunState, command: str, path: Path) -> int:
    """The iteration the run returns: ``--return-iteration`` when given, else the search's pick."""
    it = cfg.return_iteration
    if it is None:
        return state.best
    if it > state.completed:
        raise ConfigError(f"--return-iteration {it}: this run has iterations 1 to {state.completed}; its steps "
                          f"are saved: pick one of them with 'transtailor {command.split('-')[0]} --resume {path} "
                          f"--return-iteration N'")
    return it


def iterations_seconds(iterations: list[IterationRecord]) -> float:
    """Wall time of the given iterations' phases (FT for iteration 0)."""
    return sum(r.seconds_total for r in iterations)


#: a pruned copy of the model, its pruning record and the surviving channels' scores
_Pruned = tuple[nn.Module, PruneRecord, dict[str, torch.Tensor]]


def _iteration(s: Setup[IterativeConfig], loop: _Loop, it: int, macs0: int, ift_epochs: int,
               iterations: list[IterationRecord]) -> tuple[IterationRecord, dict, dict, Evaluated]:
    cfg, model, plan = s.cfg, s.bundle.model, loop.plan
    # the --distill teacher when it trains the steps too (--distill-in all; the model before this step for
    # 'previous'); a soft criterion trains without one
    teacher = None if plan.criterion.soft or cfg.distill_in != "all" else \
        loop.teacher(s, copy.deepcopy(model) if cfg.distill_choice() == "previous" else None)
    macs_before = iterations[-1].macs
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
        trained_macs: int | None = macs_before  # trained at full width, the filters zeroed
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
            trained_macs = None  # the pruned model's, measured below
            reuse_val = attached.gates is None  # folding changes the arithmetic: score the folded model anew
            attached.finish(model)
        finally:
            attached.remove_hooks()  # process-wide: never left behind by a failed phase
        times["finetune"] = time.perf_counter() - t
    t = time.perf_counter()
    rec, evaluated = _evaluate_and_measure(s, it, plan.method, macs0, fitted, loop.timing, loop.original, reuse_val)
    times["eval"] = time.perf_counter() - t
    rec.seconds = times
    rec.compute = (0.0 if plan.criterion.soft else plan.criterion.train_passes() * macs_before / macs0) + \
        epochs_equivalent(ift_epochs, trained_macs or rec.macs, macs0, teacher_macs=_macs(teacher, s.image_size))
    rec.filters_removed = sum(record.removed.values())
    tries = None
    if settled is not None and budget.time_plan is not None:
        tries = {"relative_time_wanted": budget.time_plan.r_want,
                 "table_and_measured_time": [list(p) for p in settled.tries]}
    pruning = record.to_json(target=budget.target, round_to=loop.budget.round_to, tries=tries)
    return rec, {"scores": {k: v.cpu() for k, v in scored.scores.items()}, **scored.saved}, pruning, evaluated


#: the recovery training's seed offset: apart from every iteration's (seed * 1000 + iteration)
RECOVERY_SEED = 999


def _recover(s: Setup[IterativeConfig], loop: _Loop, best: int, macs0: int) -> IterationRecord:
    """``--recover-epochs``: train the returned sub-model (iteration ``best``) on a fresh schedule, one epoch of
    warm-up then the configured decay, with the ``--distill`` teacher if any; save it to ``recovered/``.
    A run killed here redoes the recovery on resume (the loop is committed, the recovery is not)."""
    cfg, ckpt = s.cfg, loop.ckpt
    s.bundle.model = ckpt.load_model(best, model=s.bundle.model).model.to(s.device)
    _seed_iteration(s, RECOVERY_SEED)
    teacher = loop.teacher(s, None)  # with --distill previous: the model the pruning started from
    t = time.perf_counter()
    fitted = finetune_phase(s, "full", cfg.recovery_epochs(), "recover", {"iteration": best},
                            criterion=_distiller(s, teacher), warmup_epochs=1.0)
    seconds = time.perf_counter() - t
    rec, evaluated = _evaluate_and_measure(s, best, "recover", macs0, fitted, loop.timing, loop.original)
    rec.seconds = {"finetune": seconds}
    rec.compute = epochs_equivalent(cfg.recovery_epochs(), rec.macs, macs0, teacher_macs=_macs(teacher, s.image_size))
    rec.extra["recovery"] = _recovery_options(to_dict(cfg))  # this recovery's own, kept with it
    ckpt.save_recovered(rec, s.bundle, _meta(s, rec), evaluated)
    log.info("recovered iteration %d over %d epochs: test top-1 %.2f%%", best, cfg.recovery_epochs(), rec.test_top1)
    return rec


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


def _distiller(s: Setup[IterativeConfig], teacher: nn.Module | None) -> Distiller | None:
    """The fine-tuning's criterion: plain cross-entropy (None) without a teacher, else the distillation mix."""
    if teacher is None:
        return None
    return Distiller(teacher, s.cfg.distill_weight, s.cfg.distill_temperature, s.cfg.label_smoothing)


def _macs(model: nn.Module | None, image_size: int) -> int | None:
    return None if model is None else count_macs_params(model, image_size)[0]


def _reference(s: Setup[IterativeConfig], loop: _Loop, start: IterationRecord) -> Reference | None:
    """What the returned sub-model is judged against: a saved ``--reference`` model scored on this run's
    splits, else the start model when it is FT-Full, else a saved ``--distill`` teacher, else none."""
    if loop.saved_reference is not None:
        return _scored_reference(s, loop.saved_reference.model, f"reference {s.cfg.reference}")
    if s.cfg.start == "ft-full":
        epochs = s.cfg.start_epochs()  # how converged it is: say it
        trained = f", from {s.cfg.from_ft}" if s.cfg.from_ft else f", {epochs} epoch{'s' * (epochs != 1)}"
        return Reference(name=f"FT-Full (iteration 0{trained})",
                         val_top1=start.val_top1, test_top1=start.test_top1, macs=start.macs,
                         compute=start.compute if not s.cfg.from_ft else None)
    if s.cfg.distill_choice() in DISTILL_CHOICES:
        return None
    return _scored_reference(s, loop.saved_teacher(s).model, f"teacher {s.cfg.distill_choice()}")


def _scored_reference(s: Setup[IterativeConfig], model: nn.Module, name: str) -> Reference:
    """A saved model as the reference row: scored on this run's val and test splits."""
    scores, _ = final_scores(s, model)
    return Reference(name=name, val_top1=scores.get("val_top1"), test_top1=scores["test_top1"],
                     macs=_macs(model, s.image_size))


def _log_iteration(rec: IterationRecord) -> None:
    log.info("iteration %d: val top-1 %s, test top-1 %.2f%%, %.1f M MACs (%.1f%% fewer), %.2f M params%s",
             rec.iteration, "-" if rec.val_top1 is None else f"{rec.val_top1:.2f}%", rec.test_top1,
             rec.macs / 1e6, 100 * rec.flops_reduction, rec.params / 1e6, "" if rec.best else " (not kept)")


def _plots(run: RunDir) -> None:
    try:
        from ..reporting.plots import draw_search_plots
    except ImportError:  # matplotlib is a dependency; a broken install should not lose the run
        log.warning("matplotlib is unavailable: no plots drawn")
        return
    draw_search_plots(run.path)

