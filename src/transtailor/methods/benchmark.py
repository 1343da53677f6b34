"""``transtailor benchmark``: re-measure the speed of a run's sub-models (or a saved or exported model)
on the machine it runs on.

A run folder: every ``iter_NNN/model.pt`` (and ``resolution/model.pt``, at its own input size) is timed
against iteration 0 (the unpruned FT model), all models alternately in one process for ``--rounds`` rounds, at batch 1 and ``--latency-batch``;
the speed-up is the median of the per-round ratios, with its min and max. A single model file
(``model.pt``, or an exported ``.onnx`` run with ONNX Runtime) is timed alone, or against
``--reference``. The table is printed and written as ``latency.json`` in a run folder, as
``<file name>.latency.json`` beside a single file, or to ``--output`` (never over a run's own files).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..config import BenchmarkConfig
from ..errors import ConfigError
from ..models.measure import count_macs_params
from ..models.serialize import load_bundle, resolve_model_path
from ..models.timing import (Latency, TimingSetup, check_target, compare_latency, device_name, library_versions,
                             make_runner, onnx_file_runner, onnx_input_size, resolve_target)
from ..records import IterationRecord
from ..runs import MODEL_FILE, RESOLUTION_DIR, atomic_write, check_output, read_json
from ..training import set_threads


@dataclass
class Entry:
    """One model to time: a module (timed on the target) or a ready runner (an ONNX file)."""

    name: str
    model: nn.Module | None
    onnx: str | None
    image_size: int
    info: dict[str, Any]


@dataclass
class BenchmarkResult:
    rows: list[dict[str, Any]]
    path: Path
    table: str


def benchmark(cfg: BenchmarkConfig) -> BenchmarkResult:
    cfg.validate()
    set_threads(cfg.threads)
    src = Path(cfg.model_path).expanduser()
    if not src.exists():
        raise ConfigError(f"{cfg.model_path}: no such run folder or model file")
    onnx_only = src.suffix == ".onnx"
    here = "cuda" if torch.cuda.is_available() else "cpu"
    target = "onnxruntime" if onnx_only else resolve_target(cfg.latency_target, here)
    if onnx_only and cfg.latency_target not in ("auto", "onnxruntime"):
        raise ConfigError(f"{src} is an ONNX file: it is timed with ONNX Runtime (--latency-target onnxruntime)")
    check_target(target)
    out = _output(src, cfg)
    entries = _entries(src, cfg)
    reference = _reference(src, cfg, entries)
    setup = TimingSetup(target, cfg.latency_batch, cfg.threads)
    rows = [dict(e.info, name=e.name, image_size=e.image_size) for e in entries]
    for batch, key in ((1, "b1"), (cfg.latency_batch, "batch")):
        results = _time(entries, reference, dataclasses.replace(setup, batch=batch), cfg.rounds)
        for row, e in zip(rows, entries):
            res = results[e.name]
            row[f"latency_ms_{key}"] = res.ms
            if reference is not None:
                row[f"speedup_{key}"] = res.speedup
                row[f"speedup_{key}_range"] = [res.speedup_min, res.speedup_max]
    facts = {"target": target, "device": device_name(target), "threads": setup.torch_threads(),
             "batch": cfg.latency_batch, "rounds": cfg.rounds, "reference": reference,
             "machine": platform.machine(), **library_versions(target)}
    payload = {**facts, "models": rows}
    atomic_write(out, lambda fh: fh.write(json.dumps(payload, indent=2)))
    return BenchmarkResult(rows, out, _table(rows, facts))


def _entries(src: Path, cfg: BenchmarkConfig) -> list[Entry]:
    if src.is_dir() and (src / "iterations.json").is_file():
        entries = []
        for rec in read_json(src / "iterations.json"):
            it = IterationRecord.from_json(rec).iteration
            path = src / f"iter_{it:03d}" / "model.pt"
            if not path.is_file():
                raise ConfigError(f"{path} is missing: the run is incomplete")
            entries.append(_module_entry(f"iter_{it:03d}", path, cfg, {"iteration": it}))
        candidate = src / RESOLUTION_DIR / MODEL_FILE  # the start model at a lower input size (--resolution)
        if candidate.is_file():
            entries.append(_module_entry(RESOLUTION_DIR, candidate, dataclasses.replace(cfg, image_size=None), {}))
        return entries
    if src.suffix == ".onnx":
        size = cfg.image_size or onnx_input_size(str(src))
        if size is None:
            raise ConfigError(f"{src} takes any input size: give the one to time with --image-size")
        return [Entry(src.name, None, str(src), size, {})]
    return [_module_entry(src.name, resolve_model_path(src), cfg, {})]


def _output(src: Path, cfg: BenchmarkConfig) -> Path:
    """Where the table goes: ``--output`` (checked before anything is timed), else ``latency.json`` in a
    run folder or ``<name>.latency.json`` beside a file, so that two files of one folder keep their own."""
    if cfg.output:
        sources = [src] + ([Path(cfg.reference)] if cfg.reference else [])
        return check_output(Path(cfg.output).expanduser(), force=cfg.force, sources=tuple(sources))
    return src / "latency.json" if src.is_dir() else src.with_name(f"{src.name}.latency.json")


def _module_entry(name: str, path: Path, cfg: BenchmarkConfig, info: dict[str, Any]) -> Entry:
    bundle = load_bundle(path)
    size = cfg.image_size or int(bundle.meta.get("image_size", 224))
    macs, params = count_macs_params(bundle.model, size)
    return Entry(name, bundle.model.eval(), None, size, {**info, "macs": macs, "params": params,
                                                         "image_size": size})


def _reference(src: Path, cfg: BenchmarkConfig, entries: list[Entry]) -> str | None:
    if cfg.reference:
        ref = Path(cfg.reference).expanduser()
        if not ref.exists():
            raise ConfigError(f"--reference {cfg.reference}: no such model file or run folder")
        if ref.suffix == ".onnx":
            size = cfg.image_size or onnx_input_size(str(ref)) or entries[0].image_size
            entries.insert(0, Entry("reference", None, str(ref), size, {}))
        else:
            entries.insert(0, _module_entry("reference", resolve_model_path(ref), cfg, {}))
        return "reference"
    if src.is_dir() and entries and entries[0].name == "iter_000":
        macs0 = entries[0].info["macs"]
        for e in entries:
            e.info["flops_reduction"] = 1.0 - e.info["macs"] / macs0
        return "iter_000"
    return None


def _time(entries: list[Entry], reference: str | None, setup: TimingSetup, rounds: int) -> dict[str, Latency]:
    """Each model timed at its own input size (a model trained at a lower resolution is compared at it)."""
    models: dict[str, nn.Module | Callable[[], Any]] = {}
    for e in entries:
        shape = (setup.batch, 3, e.image_size, e.image_size)
        models[e.name] = (onnx_file_runner(e.onnx, shape, setup.threads) if e.onnx
                          else make_runner(e.model, shape, setup))  # type: ignore[arg-type]
    shape = (setup.batch, 3, entries[0].image_size, entries[0].image_size)
    return compare_latency(models, reference or entries[0].name, shape, setup, rounds=rounds)


def _table(rows: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    from ..reporting.tables import markdown_table, speedup_cell

    header = ["model", "px", "MMACs", "FLOPs red. %", "b1 ms", "b1 speed-up", f"b{facts['batch']} ms",
              f"b{facts['batch']} speed-up"]
    body = []
    for r in rows:
        body.append([r["name"], str(r["image_size"]), f"{r['macs'] / 1e6:.1f}" if "macs" in r else "-",
                     f"{100 * r['flops_reduction']:.1f}" if "flops_reduction" in r else "-",
                     f"{r['latency_ms_b1']:.2f}", speedup_cell(r.get("speedup_b1"), r.get("speedup_b1_range")),
                     f"{r['latency_ms_batch']:.1f}", speedup_cell(r.get("speedup_batch"), r.get("speedup_batch_range"))])
    head = (f"{facts['target']} on {facts['device']}, {facts['threads']} threads, median over "
            f"{facts['rounds']} interleaved rounds; speed-up against {facts['reference'] or '-'} [min-max]")
    return head + "\n\n" + markdown_table(header, body)
