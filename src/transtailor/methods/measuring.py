"""What a model costs: MACs, parameters and its latency on the run's latency target, alone or timed
alternately against a reference (the speed-up is the median of the per-round ratios)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn as nn

from ..config import CommonConfig
from ..distributed import is_main
from ..models import count_macs_params
from ..models import timing
from ..models.timing import Latency, TimingSetup, resolve_target


def timing_setup(cfg: CommonConfig, device: torch.device | str, batch: int | None = None) -> TimingSetup:
    """Where ``cfg`` measures latency: ``--latency-target`` (``auto`` read against ``device``) and ``--threads``."""
    return TimingSetup(resolve_target(cfg.latency_target, device), batch or cfg.latency_batch, cfg.threads)


def measure(model: nn.Module, image_size: int, *, setup: TimingSetup | None = None,
            reference: nn.Module | None = None, rounds: int = 5, reference_size: int | None = None
            ) -> dict[str, Any]:
    """MACs, parameters and, given a timing ``setup``, latency at batch 1 and ``setup.batch``.

    With a ``reference`` model (the original of a pruned one) both are timed alternately and the
    speed-up is the median of the per-round ratios, with their min and max; the reference takes
    ``reference_size`` images (default ``image_size``: a model at a lower resolution is compared with
    the original at its own).
    """
    macs, params = count_macs_params(model, image_size)
    out: dict[str, Any] = {"macs": macs, "params": params}
    if setup is not None and is_main():  # only rank 0 records it
        out.update(latency_fields(model, image_size, setup, reference, rounds, reference_size))
    return out


def latency_fields(model: nn.Module, image_size: int, setup: TimingSetup, reference: nn.Module | None = None,
                   rounds: int = 5, reference_size: int | None = None) -> dict[str, Any]:
    """The latency fields of a record: ``latency_ms_b1``, ``latency_ms_batch`` and the speed-ups."""
    out: dict[str, Any] = {"latency_target": setup.target, "latency_batch": setup.batch,
                           "latency_threads": setup.torch_threads()}
    for batch, key in ((1, "b1"), (setup.batch, "batch")):
        timed = _timed(model, reference, image_size, dataclasses.replace(setup, batch=batch), rounds,
                       reference_size)
        out[f"latency_ms_{key}"] = timed.ms
        if reference is not None:
            out[f"speedup_{key}"] = timed.speedup
            out[f"speedup_{key}_range"] = [timed.speedup_min, timed.speedup_max]
    return out


def reference_runner(reference: nn.Module, image_size: int, setup: TimingSetup) -> Callable[[], Any]:
    """``reference`` ready to be timed at ``image_size`` px and ``setup.batch``, to compare several models with
    (:func:`measured_speedup`) without building it again: on ONNX Runtime that is an export and a session."""
    return timing.make_runner(reference, _shape(setup, image_size), setup)


def measured_speedup(model: nn.Module, reference: nn.Module | Callable[[], Any], image_size: int,
                     setup: TimingSetup, rounds: int, reference_size: int | None = None) -> float:
    """``model``'s speed-up over ``reference`` at ``setup.batch``: median of alternate rounds' ratios (the
    reference at ``reference_size`` px, default ``image_size``; or a :func:`reference_runner`, which has its
    own)."""
    return _timed(model, reference, image_size, setup, rounds, reference_size).speedup


def _shape(setup: TimingSetup, size: int) -> tuple[int, int, int, int]:
    return setup.batch, 3, size, size


def _timed(model: nn.Module, reference: nn.Module | Callable[[], Any] | None, image_size: int, setup: TimingSetup,
           rounds: int, reference_size: int | None = None) -> Latency:
    """``model`` timed at ``setup.batch``, alternately with ``reference`` where one is given, each at its own
    input size (a reference given as a runner is timed as it was built)."""
    models: dict[str, Any] = {"model": timing.make_runner(model, _shape(setup, image_size), setup)}
    if isinstance(reference, nn.Module):
        reference = timing.make_runner(reference, _shape(setup, reference_size or image_size), setup)
    if reference is not None:
        models = {"reference": reference, **models}
    res = timing.compare_latency(models, "model" if reference is None else "reference", _shape(setup, image_size),
                                 setup, rounds=rounds)
    return res["model"]
