"""What every method does before and after its phases: set up, measure, summarise, save.

:func:`prepare` checks every input (options, model, data) before it creates the run folder, so bad
input writes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import torch
import torch.nn as nn

from ..config import CommonConfig, to_dict
from ..data import DataBundle, build_data
from ..data.recipes import recipe_image_size
from ..distributed import barrier, init_from_env, is_main
from ..errors import ConfigError, ModelError
from ..models import count_macs_params, save_model
from ..models import timing
from ..models.timing import Latency, TimingSetup, check_target, resolve_target
from ..models.serialize import read_payload
from ..models.weights import load_checked
from ..models.heads import replace_head
from ..models.zoo import DEFAULT_IMAGE_SIZE, ModelBundle, create_model, native_image_size, wrap_module
from ..records import FinetuneSummary, RunFacts
from ..runs import MODEL_FILE, RunDir, holds_files, write_json
from ..training import resolve_device, seed_everything, set_threads
from ..training.loop import FitResult, predict
from ..training.predictions import Evaluated

log = logging.getLogger("transtailor")


C = TypeVar("C", bound=CommonConfig, covariant=True)  # a Setup[SearchConfig] is a Setup[IterativeConfig]
T = TypeVar("T", bound=CommonConfig)


@dataclass
class Setup(Generic[C]):
    cfg: C
    device: torch.device
    bundle: ModelBundle
    data: DataBundle
    run: RunDir
    started: float

    @property
    def image_size(self) -> int:
        """The image size the run trains at: ``cfg.image_size``, which :func:`prepare` resolves."""
        assert self.cfg.image_size is not None
        return self.cfg.image_size


def prepare(cfg: T, command: str, model: nn.Module | None = None, *, overwrite: bool = False,
            restoring: bool = False, check: Callable[[ModelBundle, int, torch.device], None] | None = None
            ) -> Setup[T]:
    """Seed, pick the device, build the model with a target head and the data, then open the run folder.

    The pretrained weights are only read when they are used: with ``--from-ft`` the FT model replaces
    them, and with ``restoring`` (a resumed run with a saved iteration) the run's own checkpoint does,
    so neither needs them on disk or a download. ``check(bundle, image_size, device)`` refuses what the
    method cannot do with this model, also before the folder exists.
    """
    started = time.perf_counter()
    cfg.validate()
    image_size = cfg.image_size or recipe_image_size(cfg.data) or (
        native_image_size(cfg.model) if model is None else DEFAULT_IMAGE_SIZE)
    cfg = dataclasses.replace(cfg, image_size=image_size)
    out = Path(cfg.out) if cfg.out else _default_out(command, cfg)
    if cfg.out and not overwrite and holds_files(out):
        raise ConfigError(f"--out {out} already holds a run; choose another folder (runs are never overwritten)")
    set_threads(cfg.threads)
    device = init_from_env(resolve_device(cfg.device))
    if cfg.latency:
        check_target(resolve_target(cfg.latency_target, device))
    seed_everything(cfg.seed)
    from_ft = None if restoring else getattr(cfg, "from_ft", None)
    if model is not None:
        bundle = wrap_module(model)
    else:
        bundle = create_model(cfg.model, None, "none" if restoring or from_ft else cfg.weights)
        bundle.meta["weights"] = cfg.weights
    data = build_data(
        cfg.data, image_size=image_size, mean=bundle.mean, std=bundle.std, crop_pct=cfg.crop_pct,
        batch_size=cfg.batch_size, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed,
        cache=cfg.cache, workers=cfg.workers, data_root=cfg.data_root, device=device,
        caltech_split=cfg.caltech_split, caltech_clutter=cfg.caltech_clutter,
    )
    seed_everything(cfg.seed)  # the head's initialisation does not depend on how much data was read
    bundle.head = replace_head(bundle.model, data.num_classes)
    bundle.spec["num_classes"] = data.num_classes
    bundle.model.to(device)
    if device.type == "cuda":
        bundle.model.to(memory_format=torch.channels_last)
    if from_ft:
        load_ft_model(bundle, data.classes, from_ft, cfg.model)
    _check_input_size(bundle.model, image_size, cfg.model, device)
    if check is not None:
        check(bundle, image_size, device)
    barrier()  # every rank has checked --out before rank 0 creates it
    run = RunDir(out).create(overwrite=overwrite)  # claimed: a second process stops here
    run.write_config({"command": command, **_absolute_paths(to_dict(cfg)), "out": str(Path(out).resolve())})
    log.info("%s: %s on %s (%s), %d classes, %s images train/val/test -> %s", command, cfg.model, cfg.data,
             device, data.num_classes, "/".join(str(data.counts.get(k, 0)) for k in ("train", "val", "test")), out)
    _warn_small_validation(data)
    return Setup(cfg, device, bundle, data, run, started)


#: fewer validation images per class than this and one image moves top-1 by several points
FEW_VAL_PER_CLASS = 10


def _warn_small_validation(data: DataBundle) -> None:
    n = data.counts.get("val", 0)
    if data.val_loader is not None and n < FEW_VAL_PER_CLASS * data.num_classes:
        log.warning("the validation split has %d images (%.1f per class; one image is %.1f points of top-1): "
                    "selections on it are noisy. The default stop rule (--stop-rule loss) and epoch choice "
                    "(--epoch-choice last) are made for this. More images in a val/ folder help; a larger "
                    "--val-fraction takes them from training",
                    n, n / data.num_classes, 100.0 / max(n, 1))


def _check_input_size(model: nn.Module, size: int | None, name: str, device: torch.device) -> None:
    """One forward pass of one image before the run folder exists: a size the network cannot take is one line."""
    if size is None:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=device))
    except RuntimeError as exc:
        raise ConfigError(f"--image-size {size} is too small for {name} ({str(exc).splitlines()[0]}); "
                          "use a larger size") from None
    finally:
        model.train(was_training)


# options that may name a file or folder: stored absolute, so that --resume works from any folder
PATH_OPTIONS = ("data", "data_root", "weights", "from_ft", "distill", "latency_cache")


def _absolute_paths(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in PATH_OPTIONS:
        v = out.get(key)
        if isinstance(v, str) and v and Path(v).exists():
            out[key] = str(Path(v).resolve())
    return out


def require_classes(meta: dict[str, Any], classes: list[str], what: str) -> None:
    """Raise :class:`ConfigError` unless a saved model's ``meta`` names exactly ``classes``, in order."""
    theirs = list(meta.get("classes") or [])
    if theirs != list(classes):
        raise ConfigError(f"{what}: that model was trained on {len(theirs)} classes, not on this data's "
                          f"{len(classes)} (the same names in the same order are needed)")


def load_ft_model(bundle: ModelBundle, classes: list[str], path: str, model_name: str) -> None:
    """``--from-ft``: fill ``bundle``'s fresh model with a saved FT model of the same architecture and classes."""
    try:
        payload = read_payload(path)
    except ModelError as exc:
        raise ConfigError(f"--from-ft {path}: {exc}") from None
    require_classes(payload["meta"], classes, f"--from-ft {path}")
    try:
        load_checked(bundle.model, payload["state_dict"], source="it")
    except ModelError as exc:
        raise ConfigError(f"--from-ft {path}: not an unpruned {model_name} with this head ({exc}); start from a "
                          "'finetune --mode head' run of it") from None
    log.info("starting from the FT model in %s", path)


def _default_out(command: str, cfg: CommonConfig) -> Path:
    data_name = Path(cfg.data).name or "data"
    base = Path("runs") / f"{command}-{cfg.model.replace(':', '_')}-{data_name}"
    out, n = base, 1
    while holds_files(out):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def timing_setup(cfg: CommonConfig, device: torch.device | str, batch: int | None = None) -> TimingSetup:
    """Where ``cfg`` measures latency: ``--latency-target`` (``auto`` read against ``device``) and ``--threads``."""
    return TimingSetup(resolve_target(cfg.latency_target, device), batch or cfg.latency_batch, cfg.threads)


def measure(model: nn.Module, image_size: int, *, setup: TimingSetup | None = None,
            reference: nn.Module | None = None, rounds: int = 5) -> dict[str, Any]:
    """MACs, parameters and, given a timing ``setup``, latency at batch 1 and ``setup.batch``.

    With a ``reference`` model (the original of a pruned one) both are timed alternately and the
    speed-up is the median of the per-round ratios, with their min and max.
    """
    macs, params = count_macs_params(model, image_size)
    out: dict[str, Any] = {"macs": macs, "params": params}
    if setup is not None and is_main():  # only rank 0 records it
        out.update(latency_fields(model, image_size, setup, reference, rounds))
    return out


def latency_fields(model: nn.Module, image_size: int, setup: TimingSetup, reference: nn.Module | None = None,
                   rounds: int = 5) -> dict[str, Any]:
    """The latency fields of a record: ``latency_ms_b1``, ``latency_ms_batch`` and the speed-ups."""
    out: dict[str, Any] = {"latency_target": setup.target, "latency_batch": setup.batch,
                           "latency_threads": setup.torch_threads()}
    for batch, key in ((1, "b1"), (setup.batch, "batch")):
        timed = _timed(model, reference, image_size, dataclasses.replace(setup, batch=batch), rounds)
        out[f"latency_ms_{key}"] = timed.ms
        if reference is not None:
            out[f"speedup_{key}"] = timed.speedup
            out[f"speedup_{key}_range"] = [timed.speedup_min, timed.speedup_max]
    return out


def measured_speedup(model: nn.Module, reference: nn.Module, image_size: int, setup: TimingSetup,
                     rounds: int) -> float:
    """``model``'s speed-up over ``reference`` at ``setup.batch``: median of alternate rounds' ratios."""
    return _timed(model, reference, image_size, setup, rounds).speedup


def _timed(model: nn.Module, reference: nn.Module | None, image_size: int, setup: TimingSetup,
           rounds: int) -> Latency:
    """``model`` timed at ``setup.batch``, alternately with ``reference`` where one is given."""
    models = {"model": model} if reference is None else {"reference": reference, "model": model}
    res = timing.compare_latency(models, "model" if reference is None else "reference",
                          (setup.batch, 3, image_size, image_size), setup, rounds=rounds)
    return res["model"]


def final_scores(s: Setup, model: nn.Module, phase: FitResult | None = None, *,
                 reuse_val: bool = True) -> tuple[dict[str, Any], Evaluated]:
    """Validation and test metrics of ``model`` and its predictions behind them.

    ``phase`` is the training phase that produced the model; every epoch's validation predictions are
    kept with the result. With ``reuse_val`` the model is that phase's kept epoch as it stands, so its
    validation predictions are reused, not computed again (not so once gates were folded into it or
    filters removed after training).
    """
    val = phase.val if phase is not None and reuse_val else None
    if val is None and s.data.val_loader is not None:
        val = predict(model, s.data.val_loader, s.device, "val")
    result = Evaluated(test=predict(model, s.data.test_loader, s.device, "test"), val=val,
                       val_epochs=phase.val_predictions if phase is not None else None,
                       kept_epoch=phase.best_epoch if phase is not None else None)
    scores: dict[str, Any] = {}
    if val is not None:
        scores.update({f"val_{k}": v for k, v in val.metrics().items()})
    scores.update({f"test_{k}": v for k, v in result.test.metrics().items()})
    return scores, result


def write_predictions(path: Path, evaluated: Evaluated) -> None:
    """``predictions.json``: per image, the label, predicted class, loss and top-5 hit on val and test,
    and on val for every epoch of the phase (see :mod:`transtailor.training.predictions`)."""
    if is_main():
        write_json(path, evaluated.to_json())


def run_facts(s: Setup) -> RunFacts:
    """What every summary records about the data and the machine."""
    return RunFacts(classes=s.data.num_classes, images=s.data.counts, skipped_files=len(s.data.skipped),
                    skipped_examples=s.data.skipped[:20], device=str(s.device), threads=torch.get_num_threads(),
                    torch=torch.__version__, machine=platform.machine())


def finish(s: Setup, model: nn.Module, method: str, fitted: FitResult, scores: dict[str, Any]) -> FinetuneSummary:
    """Measure, save the model into the run folder and write ``summary.json``; return the summary."""
    cost = measure(model, s.image_size, setup=timing_setup(s.cfg, s.device) if s.cfg.latency else None,
                   rounds=s.cfg.latency_rounds)
    summary = FinetuneSummary(method=method, best_epoch=fitted.best_epoch, train_seconds=fitted.seconds,
                              **scores, **cost, facts=run_facts(s), wall_seconds=time.perf_counter() - s.started)
    meta = {"classes": s.data.classes, "image_size": s.image_size, "crop_pct": s.cfg.crop_pct,
            "macs": summary.macs, "params": summary.params}
    save_model(s.run.file(MODEL_FILE), s.bundle, meta)
    s.run.write_summary(summary.to_json())
    barrier()  # the run folder is complete before any rank goes on
    return summary
