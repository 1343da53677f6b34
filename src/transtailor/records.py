"""Typed records of a run folder: an iteration's record, the stop rule's check, the loop's state and
the run summaries.

Each is a dataclass with one meaning per field. :meth:`to_json` writes the JSON the run folder has
always held (``iterations.json``, ``iter_NNN/metrics.json``, ``state.json``, ``summary.json``) and
:meth:`from_json` reads it back, files written by earlier versions included: keys a record does not
know are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .errors import RunFileError

T = TypeVar("T")


def _present(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``obj``'s fields among ``names`` that are set (not None), by name."""
    return {n: getattr(obj, n) for n in names if getattr(obj, n) is not None}


def _known(cls: type, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` split into the keys that are ``cls``'s fields and the rest."""
    names = {f.name for f in dataclasses.fields(cls)}
    return ({k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names})


def _construct(cls: Callable[..., T], what: str, **fields: Any) -> T:
    """``cls(**fields)``; a required field missing from the file is one line, not a TypeError."""
    try:
        return cls(**fields)
    except TypeError as exc:
        raise RunFileError(f"{what} lacks a field ({exc})") from None


def _mapping(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RunFileError(f"{what} is not a record TransTailor wrote (not a JSON object)")
    return data


@dataclass
class StopCheck:
    """The stop rule's verdict on one sub-model: ``value`` against ``limit`` (none without a rule or a
    validation split); ``stop`` when it fell past the limit."""

    rule: str
    stop: bool = False
    value: float | None = None
    limit: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, **_present(self, ("value", "limit")), "stop": self.stop}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StopCheck":
        known, _ = _known(cls, _mapping(data, "a stop check"))
        return cls(**known)


@dataclass(kw_only=True)
class Measured:
    """A model's scores on the validation and test splits and its cost: MACs, parameters and, when
    latency was measured, its time at batch 1 and at the latency batch with the speed-ups against
    the original model (the median of per-round ratios, and their ``[min, max]``)."""

    val_loss: float | None = None
    val_top1: float | None = None
    val_top5: float | None = None
    test_loss: float
    test_top1: float
    test_top5: float | None = None
    macs: int
    params: int
    latency_target: str | None = None
    latency_batch: int | None = None
    latency_threads: int | None = None
    latency_ms_b1: float | None = None
    latency_ms_batch: float | None = None
    speedup_b1: float | None = None
    speedup_b1_range: list[float] | None = None
    speedup_batch: float | None = None
    speedup_batch_range: list[float] | None = None


#: the fields of :class:`Measured`, written under keys of the same name, in this order
_MEASURED = tuple(f.name for f in dataclasses.fields(Measured))


@dataclass(kw_only=True)
class IterationRecord(Measured):
    """One iteration of a search or prune run (iteration 0: the FT model the pruning starts from).

    ``seconds`` holds the iteration's own phases by name (``finetune``, ``score`` or the criterion's
    own such as ``alpha`` and ``beta``, ``prune``, ``eval``), written as ``seconds_<name>``;
    :attr:`seconds_total` is their sum (for iteration 0, its FT's time).
    """

    iteration: int
    phase: str
    #: the fine-tuning's kept epoch and its training time (none for a FT model loaded with --from-ft)
    best_epoch: int | None = None
    train_seconds: float | None = None
    from_ft: str | None = None
    #: 1 - MACs / the FT model's MACs
    flops_reduction: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    filters_removed: int | None = None
    #: kept by the stop rule (a pruning step it stopped at is recorded, not kept)
    best: bool = True
    stop_check: StopCheck | None = None
    #: this iteration's training compute (scoring and fine-tuning; iteration 0: FT or FT-Full) in FT-Full-epoch
    #: equivalents (:mod:`transtailor.training.compute`); None in runs written before it was recorded
    compute: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_total(self) -> float:
        return sum(self.seconds.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"iteration": self.iteration, "phase": self.phase,
                               **_present(self, ("best_epoch", "train_seconds", "from_ft")),
                               **_present(self, _MEASURED), "flops_reduction": self.flops_reduction}
        out.update({f"seconds_{k}": v for k, v in self.seconds.items()})
        out["seconds_total"] = self.seconds_total
        out.update(_present(self, ("filters_removed", "compute")))
        out["best"] = self.best
        if self.stop_check is not None:
            out["stop_check"] = self.stop_check.to_json()
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "IterationRecord":
        data = dict(_mapping(data, "an iteration record"))
        data.pop("seconds_total", None)  # the sum of the parts, in every version that wrote parts
        seconds = {k[len("seconds_"):]: float(data.pop(k)) for k in list(data) if k.startswith("seconds_")}
        check = data.pop("stop_check", None)
        known, extra = _known(cls, data)
        return _construct(cls, "an iteration record", **known, seconds=seconds,
                          stop_check=None if check is None else StopCheck.from_json(check), extra=extra)


@dataclass(kw_only=True)
class RunFacts:
    """What every summary records about the data and the machine."""

    classes: int
    #: images per split
    images: dict[str, int]
    skipped_files: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    device: str
    threads: int
    torch: str
    machine: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def pop_from(cls, data: dict[str, Any]) -> "RunFacts":
        """The facts among a summary's keys, taken out of ``data``."""
        return _construct(cls, "a run summary",
                          **{f.name: data.pop(f.name) for f in dataclasses.fields(cls) if f.name in data})


@dataclass(kw_only=True)
class FinetuneSummary(Measured):
    """``summary.json`` of a fine-tuning run (FT, FT-Full and the regularised variants).

    ``wall_seconds`` is the whole process's time, data decoding included; ``train_seconds`` the
    training's and validation's alone.
    """

    method: str
    best_epoch: int
    train_seconds: float
    facts: RunFacts
    wall_seconds: float
    #: training compute in FT-Full-epoch equivalents; None in runs written before it was recorded
    compute_ft_full_epochs: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "best_epoch": self.best_epoch, "train_seconds": self.train_seconds,
                **_present(self, _MEASURED), **self.facts.to_json(),
                **_present(self, ("compute_ft_full_epochs",)), "wall_seconds": self.wall_seconds, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FinetuneSummary":
        data = dict(_mapping(data, "a run summary"))
        facts = RunFacts.pop_from(data)
        known, extra = _known(cls, data)
        return _construct(cls, "a run summary", **known, facts=facts, extra=extra)


_SEARCH_TOP = ("method", "best_iteration", "stopped", "iterations", "macs_original", "wall_seconds")


@dataclass(kw_only=True)
class Reference:
    """The unpruned model a search's result is judged against: FT-Full when the search started from it
    (``--start ft-full``), or the ``--distill`` teacher scored on the same splits."""

    name: str
    test_top1: float
    val_top1: float | None = None
    macs: int | None = None
    #: its training compute in FT-Full-epoch equivalents, when this run trained it
    compute: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **_present(self, ("val_top1",)), "test_top1": self.test_top1,
                **_present(self, ("macs", "compute"))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Reference":
        known, _ = _known(cls, _mapping(data, "a reference record"))
        return _construct(cls, "a reference record", **known)


@dataclass(kw_only=True)
class SearchSummary:
    """``summary.json`` of a search or prune run: how it ended and the returned sub-model's record.

    ``method_seconds`` is the iterations' own time summed over every iteration, across resumes;
    ``wall_seconds`` this process's, as for every command. In the file the returned sub-model's record
    is written at the top level, without its ``iteration``, ``phase`` and ``best``.
    """

    method: str
    best_iteration: int
    #: why the loop ended: a stop rule's name, target_flops_reduction, target_speedup, max_iterations, no_progress
    stopped: str | None
    #: pruning iterations made (the FT model not counted)
    iterations: int
    macs_original: int
    best: IterationRecord
    facts: RunFacts
    method_seconds: float | None = None  # None in runs written before it was recorded
    #: the criterion that scored the filters (a search's --importance); None in runs written before it was
    criterion: str | None = None
    #: with --recover-epochs: the returned sub-model's test top-1 before its recovery training (``best`` is after)
    test_top1_before_recovery: float | None = None
    #: the whole run's training compute (every iteration, and the recovery) in FT-Full-epoch equivalents
    compute_ft_full_epochs: float | None = None
    #: FT-Full or the teacher, scored on the same splits (None when the run has neither)
    reference: Reference | None = None
    #: with --resolution: the start model trained at a lower input size, returned or not
    resolution: IterationRecord | None = None
    #: what ``best`` is: None for the sub-model of ``best_iteration``, 'resolution' for the candidate above
    returned: str | None = None
    wall_seconds: float

    def to_json(self) -> dict[str, Any]:
        best = {k: v for k, v in self.best.to_json().items()
                if k not in ("iteration", "phase", "best", "compute", "resolution")}
        return {"method": self.method, **_present(self, ("criterion",)), "best_iteration": self.best_iteration,
                **_present(self, ("returned",)),
                "stopped": self.stopped, "iterations": self.iterations, "macs_original": self.macs_original,
                **best, **self.facts.to_json(),
                **_present(self, ("method_seconds", "test_top1_before_recovery", "compute_ft_full_epochs")),
                **({"reference": self.reference.to_json()} if self.reference is not None else {}),
                **({"resolution": self.resolution.to_json()} if self.resolution is not None else {}),
                "wall_seconds": self.wall_seconds}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SearchSummary":
        data = dict(_mapping(data, "a run summary"))
        missing = [k for k in _SEARCH_TOP if k not in data]
        if missing:
            raise RunFileError(f"a search summary lacks {', '.join(missing)}")
        top = {k: data.pop(k) for k in _SEARCH_TOP}
        method_seconds, criterion = data.pop("method_seconds", None), data.pop("criterion", None)
        before_recovery = data.pop("test_top1_before_recovery", None)
        compute = data.pop("compute_ft_full_epochs", None)
        reference = data.pop("reference", None)
        resolution, returned = data.pop("resolution", None), data.pop("returned", None)
        facts = RunFacts.pop_from(data)
        best = IterationRecord.from_json({**data, "iteration": top["best_iteration"], "phase": top["method"]})
        return cls(**top, best=best, facts=facts, method_seconds=method_seconds, criterion=criterion,
                   test_top1_before_recovery=before_recovery, compute_ft_full_epochs=compute,
                   reference=None if reference is None else Reference.from_json(reference),
                   resolution=None if resolution is None else IterationRecord.from_json(resolution),
                   returned=returned)


@dataclass
class RunState:
    """``state.json``, the commit point of the loop: the last complete iteration, the kept one, the FT
    model's MACs, why the loop stopped (None while it runs) and each committed model file's SHA-256."""

    completed: int
    best: int
    macs_original: int
    stopped: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "RunState":
        if not (isinstance(data, dict) and isinstance(data.get("completed"), int) and isinstance(data.get("best"), int)
                and isinstance(data.get("macs_original"), int) and "stopped" in data):
            raise RunFileError("not a run state TransTailor wrote")
        known, _ = _known(cls, data)
        return cls(**known)
