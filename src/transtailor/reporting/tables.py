"""Plain-text tables of a search run."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..config.commands import ACCURACY_STOP_RULES
from ..errors import ConfigError
from ..records import IterationRecord, RunState, SearchSummary
from ..runs import PREDICTIONS_FILE, RECORD_FILE, RECOVERED_DIR, RESOLUTION_DIR, SUMMARY_FILE, RunDir, read_json
from .paired import validation_choice

COLUMNS: list[tuple[Any, ...]] = [
    ("iter", "iteration", "{:d}"),
    ("val top-1", "val_top1", "{:.2f}"),
    ("test top-1", "test_top1", "{:.2f}"),
    ("MMACs", "macs", "{:.1f}", 1e-6),
    ("FLOPs red. %", "flops_reduction", "{:.1f}", 100.0),
    ("M params", "params", "{:.3f}", 1e-6),
    ("b1 ms", "latency_ms_b1", "{:.2f}"),
    ("b1 speed-up", "speedup_b1", "{}"),
    ("batch ms", "latency_ms_batch", "{:.1f}"),
    ("batch speed-up", "speedup_batch", "{}"),
    ("removed", "filters_removed", "{:d}"),
    ("seconds", "seconds_total", "{:.0f}"),
    ("compute", "compute", "{:.2f}"),
]


def load_iterations(run_dir: str | Path) -> list[IterationRecord]:
    path = Path(run_dir) / "iterations.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} holds no iterations.json: is it a `transtailor search` run folder?")
    return [IterationRecord.from_json(r) for r in read_json(path)]


def load_state(run_dir: str | Path) -> RunState:
    return RunState.from_json(read_json(Path(run_dir) / "state.json"))


def load_summary(run_dir: str | Path) -> SearchSummary | None:
    """A finished run's ``summary.json``; None while it runs."""
    path = Path(run_dir) / SUMMARY_FILE
    return SearchSummary.from_json(read_json(path)) if path.is_file() else None


def returned_iteration(run_dir: str | Path) -> int:
    """The iteration a finished run returned (``--return-iteration`` or the search's pick); while it runs,
    the best so far."""
    summary = load_summary(run_dir)
    return load_state(run_dir).best if summary is None else summary.best_iteration


def returned_candidate(run_dir: str | Path) -> IterationRecord | None:
    """The lower-resolution candidate's record where a finished run returned it instead of a sub-model."""
    summary = load_summary(run_dir)
    return summary.resolution if summary is not None and summary.returned == RESOLUTION_DIR else None


def _cells(r: IterationRecord, columns: list[tuple[Any, ...]]) -> list[str]:
    """One record's cells for ``columns`` of (header, field, format[, scale]): ``-`` where it has no value."""
    out = []
    for _, key, fmt, *scale in columns:
        v = getattr(r, key)
        if key.startswith("speedup_"):
            out.append(record_speedup(r, key))
        else:
            out.append("-" if v is None else fmt.format(v * scale[0] if scale else v))
    return out


def iteration_table(run_dir: str | Path) -> str:
    """The per-iteration table; the kept best sub-model is marked with ``*``."""
    rows = load_iterations(run_dir)
    state, returned = load_state(run_dir), returned_iteration(run_dir)
    header = [c[0] for c in COLUMNS] + ["best"]
    body = [_cells(r, COLUMNS) + ["*" if r.iteration == returned else ""] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    lines.append(f"stopped by: {state.stopped}; returned sub-model: iteration {returned}")
    first = rows[0] if rows else None
    if first is not None and first.latency_target is not None:
        lines.append(f"latency: {first.latency_target}, batch 1 and {first.latency_batch}, "
                     f"{first.latency_threads} threads; speed-up = median over interleaved rounds "
                     "against iteration 0 [min-max]")
    return "\n".join(lines)


SEARCH_COLUMNS: list[tuple[Any, ...]] = [
    ("iter", "iteration", "{:d}"),
    ("FLOPs fewer %", "flops_reduction", "{:.1f}", 100.0),
    ("MMACs", "macs", "{:.1f}", 1e-6),
    ("val top-1", "val_top1", "{:.2f}"),
    ("val loss", "val_loss", "{:.4f}"),
    ("test top-1", "test_top1", "{:.2f}"),
    ("speed-up", "speedup_batch", "{}"),
    ("compute", "compute", "{:.1f}"),
]

STOP_REASONS = {
    "max_iterations": "reached --max-iterations",
    "target_flops_reduction": "reached --target-flops-reduction",
    "target_speedup": "reached --target-speedup",
    "no_progress": "the last step removed nothing (every layer at its limits)",
}

#: how the end table names iteration 0 by the phase that made it
START_NAMES = {"ft": "FT", "ft_full": "FT-Full"}


def _teacher_note(recovered: IterationRecord, start_name: str) -> str:
    """Which teacher a recovery trained with, as the end table says it: ', teacher FT-Full', or nothing."""
    teacher = recovered.extra.get("recovery", {}).get("distill", "none")
    if teacher == "none":
        return ""
    return f", teacher {start_name if teacher in ('start', 'previous') else Path(teacher).name}"


def search_table(run_dir: str | Path) -> str:
    """What a search ends with: the start model and each sub-model at a glance (the recovered one and the
    reference too, when the run has them), which one is returned, how it compares and what it cost."""
    rows = load_iterations(run_dir)
    state = load_state(run_dir)
    summary = load_summary(run_dir)
    best, stopped = (state.best if summary is None else summary.best_iteration), state.stopped
    recovered = summary is not None and summary.test_top1_before_recovery is not None
    header = [c[0] for c in SEARCH_COLUMNS] + [""]
    body = []
    for r in rows:
        cells = _cells(r, SEARCH_COLUMNS)
        mark = START_NAMES.get(r.phase, "start") if r.iteration == 0 else ""
        if r.iteration == best:
            mark = (mark + (", recovered below" if recovered else ", returned")).lstrip(", ")
            if best != state.best:
                mark += " (--return-iteration)"
        elif r.iteration == state.best:
            mark = (mark + ", the search's pick").lstrip(", ")
        elif not r.best:
            mark = "not kept: stopped here"
        cells.append(mark)
        body.append(cells)
    candidate = summary.resolution if summary is not None else None
    by_size = candidate is not None and summary is not None and summary.returned == RESOLUTION_DIR
    start_name = START_NAMES.get(rows[0].phase, "start") if rows else "start"
    recovered_file = Path(run_dir) / RECOVERED_DIR / RECORD_FILE
    if recovered and recovered_file.is_file():
        rec = IterationRecord.from_json(read_json(recovered_file))
        body.append(_cells(rec, SEARCH_COLUMNS) + ["after --recover-epochs" + _teacher_note(rec, start_name)
                                                   + ("" if by_size else ", returned")])
    if candidate is not None:
        size = candidate.extra.get("image_size")
        body.append([f"{size}px"] + _cells(candidate, SEARCH_COLUMNS)[1:]
                    + [f"{start_name} at {size} px (--resolution), "
                       + ("returned: val loss lower" if by_size else "not returned: val loss not lower")])
    ref = summary.reference if summary is not None else None
    if ref is not None and rows and rows[0].phase != "ft_full":
        known = {"iteration": "ref", "macs": None if ref.macs is None else f"{ref.macs * 1e-6:.1f}",
                 "val_top1": None if ref.val_top1 is None else f"{ref.val_top1:.2f}", "test_top1": f"{ref.test_top1:.2f}"}
        body.append([known.get(key) or "-" for _, key, *_ in SEARCH_COLUMNS] + [ref.name])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(c.rjust(w) if i < len(header) - 1 else c for i, (c, w) in enumerate(zip(b, widths))).rstrip()
             for b in [header, *body]]
    b = summary.best if summary is not None else rows[best]
    start = rows[0]
    against = (f"{ref.name} {ref.test_top1:.2f} %, {b.test_top1 - ref.test_top1:+.2f}" if ref is not None
               else f"{START_NAMES.get(start.phase, 'start')} {start.test_top1:.2f} %")
    what = (f"{START_NAMES.get(start.phase, 'the start model')} at {b.extra.get('image_size')} px" if by_size
            else f"iteration {best}{' recovered' if recovered else ''}")
    lines.append(f"returned: {what}, {100 * b.flops_reduction:.1f} % "
                 f"fewer MACs, test top-1 {b.test_top1:.2f} % ({against})"
                 + (f", {b.speedup_batch:.2f}x faster at batch {b.latency_batch} on "
                    f"{b.latency_target}" if b.speedup_batch is not None else ""))
    if summary is not None and summary.compute_ft_full_epochs is not None:
        lines.append(f"compute: {summary.compute_ft_full_epochs:.1f} FT-Full epochs of the unpruned model in all "
                     f"(column: each row's own); {summary.method_seconds or 0:.0f} s of scoring, pruning, training "
                     "and evaluation")
    lines.append(f"stopped: {stop_reason(rows, stopped)}")
    unmet = unmet_target(run_dir, rows[state.best] if state.best < len(rows) else None, stopped)
    if unmet:
        lines.append(unmet)
    if candidate is not None:
        pruned = Path(run_dir) / (RECOVERED_DIR if recovered else f"iter_{best:03d}") / PREDICTIONS_FILE
        said = validation_choice(Path(run_dir) / RESOLUTION_DIR / PREDICTIONS_FILE, pruned,
                                 f"the {candidate.extra.get('image_size')} px model", "the sub-model")
        if said is not None:
            lines.append(said)
    if ref is None:
        lines.append("no FT-Full to compare with: resume with --reference FTFULL_RUN to score a 'finetune --mode "
                     "full' run beside the result, or start with --start ft-full")
    return "\n".join(lines)


def stop_reason(rows: list[IterationRecord], stopped: str | None) -> str:
    """Why a search stopped, in words."""
    last = rows[-1] if rows else None
    check = last.stop_check if last is not None else None
    if last is not None and check is not None and check.value is not None and check.limit is not None:
        if stopped == "loss":
            return (f"iteration {last.iteration}'s val loss {check.value:.4f} rose past the limit "
                    f"{check.limit:.4f} (the lowest so far plus --loss-tolerance)")
        if stopped == "paper":
            return (f"iteration {last.iteration}'s val top-1 fell {check.value:.2f} points below the last kept "
                    f"sub-model's (more than --tau {check.limit:g})")
    return STOP_REASONS.get(stopped or "", str(stopped))


def unmet_target(run_dir: str | Path, kept: IterationRecord | None, stopped: str | None) -> str | None:
    """What to do when the accuracy stop rule ended a search before the speed-up or MAC reduction its
    options asked for; None when it did not."""
    if stopped not in ACCURACY_STOP_RULES or kept is None or not (Path(run_dir) / "config.yaml").is_file():
        return None
    cfg = RunDir(run_dir).read_config()
    speedup, flops = cfg.get("target_speedup"), cfg.get("target_flops_reduction")
    if speedup is not None:
        got = "not measured" if kept.speedup_batch is None else f"{kept.speedup_batch:.2f}x"
        asked = f"--target-speedup {speedup:g} was not reached (the last sub-model kept: {got})"
    elif flops is not None:
        asked = (f"--target-flops-reduction {flops:g} was not reached (the last sub-model kept: "
                 f"{100 * kept.flops_reduction:.1f} % fewer MACs)")
    else:
        return None
    return (f"{asked}: the stop rule ended the search first. To prune to the target anyway, run it again with "
            f"--stop-rule none; the recovery trains the result afterwards")


def speedup_cell(value: float | None, span: list[float] | None = None, reference: bool = False) -> str:
    """``1.23x [1.10-1.31]``: the median speed-up and its range over rounds; ``1.00x`` for the reference
    model, ``-`` where nothing was measured."""
    if value is None:
        return "1.00x" if reference else "-"
    lo, hi = span or [value, value]
    return f"{value:.2f}x [{lo:.2f}-{hi:.2f}]"


def record_speedup(r: IterationRecord, key: str) -> str:
    """:func:`speedup_cell` of an iteration's ``speedup_b1`` or ``speedup_batch``; iteration 0 is the reference."""
    return speedup_cell(getattr(r, key), getattr(r, f"{key}_range"), r.iteration == 0 and r.latency_target is not None)


def mean_std(values: list[float]) -> str:
    """``mean ± sample std`` with two decimals; one value alone, ``-`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
