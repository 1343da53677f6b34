"""The run folder of a search or prune, owned by one object: it saves each iteration, checks what is on
disk when the run is resumed, and decides which options a resumed run may take anew.

Layout::

    config.yaml  metrics.jsonl  iterations.json  state.json  summary.json  best/model.pt
    iter_NNN/  model.pt  importance.pt  pruning.json  predictions.json  metrics.json

A commit writes the iteration's files, then ``iterations.json``, then ``state.json``: ``state.json`` is
the commit. A kill between any two writes leaves the state of the last committed iteration, and
:meth:`Checkpoints.resume` trusts only that: it verifies each committed model by its SHA-256, removes what
a kill left half-written (temporary files, iterations after the last committed one, their metrics lines)
and reads the committed iterations back from their own ``metrics.json``. Under torchrun only rank 0
writes; every rank reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn as nn

from ..config import RECOVERY_OPTIONS, IterativeConfig, from_dict
from ..distributed import barrier, is_main
from ..errors import ConfigError, RunFileError
from ..models.serialize import load_bundle, save_model
from ..models.zoo import ModelBundle
from ..records import IterationRecord, RunState
from ..runs import CONFIG_FILE, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, RECORD_FILE, RECOVERED_DIR, RunDir, \
    atomic_write, read_json, write_json
from ..training.predictions import Evaluated
from .results import write_predictions

log = logging.getLogger("transtailor")

I = TypeVar("I", bound=IterativeConfig)

STATE_FILE = "state.json"
ITERATIONS_FILE = "iterations.json"
BEST_DIR = "best"

#: options a resumed run takes anew: where the data are and how this machine runs, and what a finished run
#: returns (``recover_epochs`` re-does the recovery, ``return_iteration`` picks another sub-model, ``reference``
#: scores another model beside it, ``resolution`` and ``resolution_epochs`` train another lower-resolution
#: candidate); never what its steps computed
RESUME_OVERRIDES = ("data", "data_root", "device", "workers", "threads", "latency_cache", "recover_epochs",
                    "return_iteration", "reference", "resolution", "resolution_epochs")

#: where a run ends: a run resumed with a deeper target or more iterations prunes on from its last step (its
#: steps so far are kept); giving one of the two targets replaces the other
ENDS = ("target_flops_reduction", "target_speedup", "max_iterations")
TARGETS = ("target_flops_reduction", "target_speedup")


class Checkpoints:
    """The iterations of one search or prune run folder."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def folder(self, it: int) -> Path:
        return self.run.path / f"iter_{it:03d}"

    def finished(self) -> bool:
        """Whether the loop has ended (``state.json`` says why): nothing but the recovery is left to train."""
        return self.has_state() and RunState.from_json(read_json(self.run.file(STATE_FILE))).stopped is not None

    def has_state(self) -> bool:
        """Whether an iteration was committed (a run killed during FT has none and starts over)."""
        return self.run.file(STATE_FILE).is_file()

    # -- writing -----------------------------------------------------------------------------------------

    def commit(self, it: int, rec: IterationRecord, bundle: ModelBundle, meta: dict[str, Any], state: RunState,
               iterations: list[IterationRecord], evaluated: Evaluated, *, scores: dict | None = None,
               pruning: dict | None = None) -> None:
        """Write iteration ``it`` (its model, scores, pruning record, predictions and record), then the list
        of iterations, then ``state`` with the model's checksum: the commit."""
        folder = self.folder(it)
        save_model(folder / MODEL_FILE, bundle, meta)
        if is_main():  # verified on resume: a file cut short or changed later is not trusted
            state.checksums[f"{folder.name}/{MODEL_FILE}"] = sha256(folder / MODEL_FILE)
        if scores is not None:
            atomic_write(folder / "importance.pt", lambda fh: torch.save(scores, fh), binary=True)
        if pruning is not None:
            write_json(folder / "pruning.json", pruning)
        write_predictions(folder / PREDICTIONS_FILE, evaluated)
        write_json(folder / RECORD_FILE, rec.to_json())
        self.run.log_metrics({"phase": "iteration", **rec.to_json()})
        write_json(self.run.file(ITERATIONS_FILE), [r.to_json() for r in iterations])
        self.write_state(state)
        barrier()  # other ranks read these files back

    def write_state(self, state: RunState) -> None:
        write_json(self.run.file(STATE_FILE), state.to_json())

    def save_recovered(self, rec: IterationRecord, bundle: ModelBundle, meta: dict[str, Any],
                       evaluated: Evaluated, name: str = RECOVERED_DIR) -> Path:
        """Write a model trained after the steps with its record and predictions to ``name/``: the recovered
        sub-model (``--recover-epochs``, ``recovered/``) or the lower-resolution candidate (``--resolution``,
        ``resolution/``). One made before (a finished run resumed with other options) is kept, moved to
        ``name_1/`` (then ``name_2/``, ...)."""
        folder = self.run.path / name
        if is_main() and (folder / MODEL_FILE).is_file():
            n = 1
            while (self.run.path / f"{name}_{n}").exists():
                n += 1
            folder.rename(self.run.path / f"{name}_{n}")
            log.info("the earlier %s model is kept in %s_%d/", name, name, n)
        barrier()
        save_model(folder / MODEL_FILE, bundle, meta)
        write_predictions(folder / PREDICTIONS_FILE, evaluated)
        write_json(folder / RECORD_FILE, rec.to_json())
        self.run.log_metrics({"phase": name, **rec.to_json()})
        return folder

    def keep_best(self, folder: Path) -> ModelBundle:
        """Copy the model in ``folder`` (an iteration's, or the recovered one) to ``best/model.pt`` (byte for
        byte) and return it loaded."""
        source = folder / MODEL_FILE
        atomic_write(self.run.path / BEST_DIR / MODEL_FILE, lambda fh: fh.write(source.read_bytes()), binary=True)
        return load_bundle(source)

    # -- resuming ----------------------------------------------------------------------------------------

    def resume(self) -> tuple[RunState, list[IterationRecord]]:
        """The committed state and iterations, with everything after the last committed iteration cleared."""
        state = self._verified_state()
        self._clear_after(state.completed)
        log.info("resuming %s after iteration %d", self.run.path, state.completed)
        return state, self._committed_iterations(state.completed)

    def load_model(self, it: int, model: nn.Module | None = None) -> ModelBundle:
        """Iteration ``it``'s saved model (into ``model``'s architecture when one is given)."""
        return load_bundle(self.folder(it) / MODEL_FILE, model=model)

    def _verified_state(self) -> RunState:
        path = self.run.file(STATE_FILE)
        data = read_json(path)  # a truncated or missing file says so itself
        try:
            state = RunState.from_json(data)
        except RunFileError:
            raise RunFileError(f"{path} is not a run state TransTailor wrote; start again with a new --out") from None
        for name, digest in state.checksums.items():
            it = int(name.split("/")[0].split("_")[1])
            if it <= state.completed and (not self.run.file(name).is_file() or sha256(self.run.file(name)) != digest):
                raise RunFileError(f"{self.run.file(name)} is missing or changed since iteration {it} was committed "
                                   "(its checksum differs): restore it, or start the run again with a new --out")
        return state

    def _clear_after(self, done: int) -> None:
        """Remove what a kill left: temporary files, iterations after ``done`` and their metrics lines."""
        if not is_main():
            return
        for tmp in self.run.path.rglob(".*.tmp"):  # a write cut off by a kill
            tmp.unlink(missing_ok=True)
        for stale in self.run.path.glob("iter_*"):  # an iteration that did not complete
            if int(stale.name.split("_")[1]) > done:
                shutil.rmtree(stale)
        kept = [r for r in self.run.metrics() if r.get("iteration", 0) <= done]
        atomic_write(self.run.file(METRICS_FILE), lambda fh: fh.writelines(json.dumps(r) + "\n" for r in kept))

    def _committed_iterations(self, completed: int) -> list[IterationRecord]:
        """Iterations 0..``completed`` from their own ``metrics.json``, and ``iterations.json`` rewritten to them
        (it may hold an iteration that was written before a kill but never committed)."""
        out = []
        for it in range(completed + 1):
            path = self.folder(it) / RECORD_FILE
            try:
                rec = IterationRecord.from_json(read_json(path))
                if rec.iteration != it:
                    raise ValueError("not this iteration's record")
            except (RunFileError, ValueError):
                raise ConfigError(f"--resume {self.run.path}: iteration {it} is committed but {path} cannot be read; "
                                  "start the run again with a new --out") from None
            out.append(rec)
        if is_main():
            write_json(self.run.file(ITERATIONS_FILE), [r.to_json() for r in out])
        return out

    @staticmethod
    def resume_config(cls: type[I], cfg: I) -> I:
        """The configuration of the run at ``cfg.resume``. An option given with ``--resume`` that differs from
        the run's is refused, except those in :data:`RESUME_OVERRIDES` (e.g. ``--data`` after the images
        moved), which are taken. An option given at its default value cannot be told from one not given,
        and is ignored."""
        assert cfg.resume is not None
        run = RunDir(cfg.resume)
        if not run.file(CONFIG_FILE).is_file():
            raise ConfigError(f"--resume {cfg.resume}: no search or prune run there (config.yaml is missing)")
        saved = {k: v for k, v in run.read_config().items() if k != "command"}
        saved.update(out=str(run.path), resume=str(run.path))
        saved.setdefault("distill_in", "all")  # written before --distill-in: its teacher trained every step
        try:
            theirs = from_dict(cls, saved)
        except ConfigError as exc:
            raise ConfigError(f"--resume {cfg.resume}: that run was not made by this command ({exc})") from None
        if "resolution_epochs" not in saved and theirs.resolution_choice() != "off":
            # written before --resolution-epochs: its candidate trained as long as the recovery (or the start)
            theirs = dataclasses.replace(theirs, resolution_epochs=theirs.recovery_epochs() or theirs.start_epochs())
        defaults, recovered = cls(), theirs.for_recovery()  # the run's latest recovery trained as `recovered`
        taken: dict[str, Any] = {}
        anew: dict[str, Any] = {}  # the recovery options given anew
        conflicts = []
        for f in dataclasses.fields(cls):
            mine = getattr(cfg, f.name)
            if f.name in ("resume", "out", "recovery_options") or mine == getattr(defaults, f.name):
                continue
            if f.name in RECOVERY_OPTIONS:
                if not _same(mine, getattr(recovered, f.name)):
                    anew[f.name] = mine
            elif _same(mine, getattr(theirs, f.name)):
                continue
            elif f.name in RESUME_OVERRIDES or f.name in ENDS:
                taken[f.name] = mine
            else:
                conflicts.append(f"--{f.name.replace('_', '-')} {mine} (the run has {getattr(theirs, f.name)})")
        if conflicts:
            raise ConfigError(f"--resume {cfg.resume} keeps the run's own options; drop {'; '.join(conflicts)}, or "
                              "start a new run")
        recovery = [f"--{k.replace('_', '-')} {v}" for k, v in anew.items()]
        if recovery and (any(k in taken for k in ENDS) or not Checkpoints(run).finished()):
            # the new options would train the remaining steps too, and the run would no longer be one recipe
            raise ConfigError(f"--resume {cfg.resume}: {', '.join(recovery)} would change only a finished run's "
                              "recovery, and this run still has steps to train; drop "
                              f"{'them' if len(recovery) > 1 else 'it'} (the steps keep the run's own), or start "
                              "a new run")
        if any(k in taken for k in TARGETS):  # the target asked for now replaces the run's
            taken.update({k: None for k in TARGETS if k not in taken and hasattr(theirs, k)})
        for k, v in taken.items():
            if v != getattr(theirs, k):
                log.info("resuming with --%s %s (the run had %s)", k.replace("_", "-"), v, getattr(theirs, k))
        for k, v in anew.items():
            log.info("recovering again with --%s %s (the last recovery had %s; the steps keep %s)",
                     k.replace("_", "-"), v, getattr(recovered, k), getattr(theirs, k))
        if anew:  # the steps' own values stay in the config: only the recovery's differ
            merged = {**theirs.recovery_options, **anew}
            taken["recovery_options"] = {k: v for k, v in merged.items() if not _same(v, getattr(theirs, k))}
        return dataclasses.replace(theirs, **taken) if taken else theirs


def sha256(path: Path) -> str:
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
