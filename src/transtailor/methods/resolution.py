"""The lower-resolution candidate (``--resolution``): the unpruned start model fine-tuned at a smaller input size.

Feeding smaller images is the simplest way a user has to a faster model, and on some data it is more
accurate than pruning at the same measured speed (docs/measurements/recovery.md). So a search with a
speed target also trains this candidate and returns it instead of the pruned sub-model when its validation
loss is lower; the end table shows both.

**Its size.** ``auto`` takes the largest multiple of :data:`SIZE_STEP` px below the run's size whose cost
reaches the run's target: the speed-up measured on ``--latency-target`` against the start model at the
run's size, each fed its own size (``--target-speedup``), else the MACs (``--target-flops-reduction``).
A size in px is taken as given.

**Its training** is the recovery's schedule: from the start model (iteration 0: with ``--start ft-full``,
the FT-Full that pruning started from), ``--resolution-epochs`` (default half of ``--recover-epochs``, rounded up;
with ``--recover-epochs 0``, as many epochs as the start model trained: a new input size needs a real schedule)
on a fresh schedule with one epoch of warm-up and ``--label-smoothing``. It trains without the ``--distill`` teacher: fed the candidate's smaller
images, FT-Full as the teacher made it less accurate on caltech101 (−0.73 points, where it made the recovered
sub-model +0.90) and costs its forward passes (docs/measurements/recovery.md).
It is saved to ``resolution/`` like ``recovered/``, with its input size in the model file, so that
``export``, ``evaluate`` and ``benchmark`` feed it the size it was trained at.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from ..config import IterativeConfig
from ..data.sampling import reseed_loader
from ..distributed import world_size
from ..errors import ConfigError
from ..models.measure import count_macs_params
from ..models.timing import TimingSetup
from ..records import IterationRecord
from ..runs import RECORD_FILE, RESOLUTION_DIR, RunDir, SUMMARY_FILE, read_json
from ..training import seed_everything
from ..training.compute import epochs_equivalent
from .checkpoints import Checkpoints
from .finetune import finetune_phase
from .measuring import measure, measured_speedup, reference_runner
from .results import final_scores
from .setup import Setup, run_data
from .stopping import SPEEDUP_TOLERANCE

log = logging.getLogger("transtailor")

#: candidate sizes are multiples of this many px (every stride-8 feature map then has a whole size)
SIZE_STEP = 8
#: no candidate below this size
MIN_SIZE = 32
#: the candidate's training seed offset: apart from every iteration's and the recovery's
RESOLUTION_SEED = 998
#: rounds of each timed size while ``auto`` looks for the size (as a latency step's tries)
PRICE_ROUNDS = 3


@dataclass
class SizeChoice:
    """The candidate's input size (None: no size reaches the target), what priced it, and each size tried
    with its price: measured speed-up, or fraction of MACs fewer."""

    size: int | None
    priced_by: str  # 'given', 'measured speed-up' or 'MACs'
    tried: list[tuple[int, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "priced_by": self.priced_by, "tried": [list(t) for t in self.tried]}


def smaller_sizes(size: int, step: int = SIZE_STEP, smallest: int = MIN_SIZE) -> list[int]:
    """The multiples of ``step`` below ``size``, largest first, down to ``smallest``."""
    first = (size - 1) // step * step
    return list(range(first, smallest - 1, -step))


def largest_reaching(sizes: list[int], price: Callable[[int], float], wanted: float) -> tuple[int | None,
                                                                                              list[tuple[int, float]]]:
    """The first of ``sizes`` (largest first) whose ``price`` reaches ``wanted``, and every size priced on the
    way: the scan stops at the first that reaches it, as a smaller size only costs less."""
    tried = []
    for r in sizes:
        value = price(r)
        tried.append((r, value))
        if value >= wanted:
            return r, tried
    return None, tried


def choose_size(cfg: IterativeConfig, model: nn.Module, size: int, timing: TimingSetup | None) -> SizeChoice:
    """The candidate's input size for ``cfg.resolution`` (``model`` is the start model, trained at ``size``)."""
    given = cfg.resolution_size()
    if given is not None:
        return SizeChoice(given, "given")
    sizes = smaller_sizes(size)
    if cfg.target_speedup is not None:
        if timing is None:
            raise ConfigError("--resolution auto with --target-speedup measures latency: drop --no-latency")
        if world_size() > 1:
            raise ConfigError("--resolution auto measures the speed of each input size in one process: give the "
                              "size in px under torchrun (e.g. --resolution 96)")

        reference = reference_runner(model, size, timing)  # built once, timed against each size

        def speedup(r: int) -> float:
            value = measured_speedup(model, reference, r, timing, PRICE_ROUNDS)
            log.info("resolution: the start model at %d px runs %.2fx as fast as at %d px (%s, batch %d)",
                     r, value, size, timing.target, timing.batch)
            return value

        found, tried = largest_reaching(sizes, speedup, cfg.target_speedup * (1.0 - SPEEDUP_TOLERANCE))
        return SizeChoice(found, "measured speed-up", tried)
    target = cfg.target_flops_reduction_asked()
    assert target is not None, "validate() refuses --resolution auto without a target"
    macs0 = count_macs_params(model, size)[0]
    found, tried = largest_reaching(sizes, lambda r: 1.0 - count_macs_params(model, r)[0] / macs0, target - 1e-9)
    return SizeChoice(found, "MACs", tried)


def candidate_key(cfg: IterativeConfig) -> dict[str, Any]:
    """What makes two candidates the same: the --resolution asked, the targets that price 'auto', the length
    (``epochs``: what it trains) and the label smoothing it trained with."""
    return {"resolution": cfg.resolution_choice(), "target_speedup": cfg.target_speedup,
            "target_flops_reduction": cfg.target_flops_reduction_asked(), "epochs": cfg.candidate_epochs(),
            "label_smoothing": cfg.label_smoothing}


def finished_candidate(run: RunDir, key: dict[str, Any]) -> IterationRecord | None:
    """A finished run's candidate trained as ``key`` says, or None (the run did not finish, or trained
    another)."""
    path = run.path / RESOLUTION_DIR / RECORD_FILE
    if not (run.file(SUMMARY_FILE).is_file() and path.is_file()):
        return None
    rec = IterationRecord.from_json(read_json(path))
    return rec if rec.extra.get("resolution", {}).get("key") == key else None


def train_candidate(s: Setup[IterativeConfig], ckpt: Checkpoints, start: nn.Module, choice: SizeChoice,
                    key: dict[str, Any], macs0: int, timing: TimingSetup | None) -> IterationRecord:
    """Fine-tune a copy of ``start`` at ``choice.size`` px for ``key["epochs"]`` (:func:`candidate_key`), score
    it, time it against ``start`` at the run's size and save it to ``resolution/``; return its record
    (iteration 0, phase ``resolution``)."""
    size, epochs = choice.size, int(key["epochs"])
    assert size is not None
    cfg = dataclasses.replace(s.cfg, image_size=size)
    bundle = dataclasses.replace(s.bundle, model=copy.deepcopy(start), meta=dict(s.bundle.meta))
    log.info("resolution: training the start model at %d px (%s) for %d epochs", size, choice.priced_by, epochs)
    sub = dataclasses.replace(s, cfg=cfg, bundle=bundle, data=run_data(cfg, bundle, s.device))
    seed = s.cfg.seed * 1000 + RESOLUTION_SEED
    seed_everything(seed)
    reseed_loader(sub.data.train_loader, seed)
    t = time.perf_counter()
    fitted = finetune_phase(sub, "full", epochs, "resolution", {"iteration": 0, "image_size": size},
                            warmup_epochs=1.0)
    seconds = time.perf_counter() - t
    scores, evaluated = final_scores(sub, bundle.model, fitted)
    cost = measure(bundle.model, size, setup=timing, reference=start if timing else None,
                   rounds=s.cfg.latency_rounds, reference_size=s.image_size)
    rec = IterationRecord(iteration=0, phase="resolution", **scores, **cost,
                          flops_reduction=1.0 - cost["macs"] / macs0, best_epoch=fitted.best_epoch,
                          train_seconds=fitted.seconds)
    rec.seconds = {"finetune": seconds}
    rec.compute = epochs_equivalent(epochs, rec.macs, macs0)
    rec.extra["image_size"] = size
    rec.extra["resolution"] = {**choice.to_json(), "key": key}
    meta = {"classes": s.data.classes, "image_size": size, "crop_pct": s.cfg.crop_pct, "iteration": 0,
            "macs": rec.macs, "params": rec.params}
    ckpt.save_recovered(rec, bundle, meta, evaluated, name=RESOLUTION_DIR)
    log.info("resolution: the start model at %d px: val top-1 %s, test top-1 %.2f%%", size,
             "-" if rec.val_top1 is None else f"{rec.val_top1:.2f}%", rec.test_top1)
    return rec


def returns_candidate(candidate: IterationRecord, pruned: IterationRecord) -> bool:
    """Whether the lower-resolution candidate is returned instead of the pruned sub-model: a lower validation
    cross-entropy (a tie keeps the sub-model; without validation scores, the sub-model).

    The loss, not top-1: on a few hundred validation images top-1 moves by whole images and two models a
    point apart on the test split tie or rank the wrong way round, where the mean loss counts every image's
    confidence (measured on caltech101: docs/measurements/recovery.md; the stop rule's reason too)."""
    if candidate.val_loss is None or pruned.val_loss is None:
        return False
    return candidate.val_loss < pruned.val_loss
