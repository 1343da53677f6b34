"""A method's start: check every input (options, model, data), build the model with its new head and the
data, then open (and claim) the run folder. Bad input writes nothing: the folder is created last.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import torch
import torch.nn as nn

from ..config import CommonConfig, to_dict
from ..config.commands import ACCURACY_STOP_RULES
from ..data import DataBundle, build_data
from ..data.recipes import recipe_image_size
from ..distributed import barrier, init_from_env
from ..errors import ConfigError, ModelError
from ..models.heads import replace_head
from ..models.serialize import read_payload
from ..models.timing import check_target, resolve_target
from ..models.weights import load_checked
from ..models.zoo import DEFAULT_IMAGE_SIZE, ModelBundle, create_model, native_image_size, wrap_module
from ..runs import SUMMARY_FILE, RunDir, holds_files
from ..training import resolve_device, seed_everything, set_threads

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
    image_size = cfg.image_size or recipe_image_size(cfg.data) or (
        native_image_size(cfg.model) if model is None else DEFAULT_IMAGE_SIZE)
    cfg = dataclasses.replace(cfg, image_size=image_size)
    cfg.validate()  # with the size resolved: options checked against it (--resolution) see the run's own
    out = Path(cfg.out) if cfg.out else _default_out(command, cfg)
    if cfg.out and not overwrite:
        RunDir(out).refuse_if_taken()  # before the data are read; checked again once the folder is claimed
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
    data = run_data(cfg, bundle, device)
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
    _warn_small_validation(data, cfg)
    return Setup(cfg, device, bundle, data, run, started)


def run_data(cfg: CommonConfig, bundle: ModelBundle, device: torch.device) -> DataBundle:
    """The run's data at ``cfg.image_size``, normalised for ``bundle``'s model (the same splits at any size)."""
    assert cfg.image_size is not None
    return build_data(
        cfg.data, image_size=cfg.image_size, mean=bundle.mean, std=bundle.std, crop_pct=cfg.crop_pct,
        batch_size=cfg.batch_size, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed,
        cache=cfg.cache, workers=cfg.workers, data_root=cfg.data_root, device=device,
        caltech_split=cfg.caltech_split, caltech_clutter=cfg.caltech_clutter,
    )


#: fewer validation images per class than this and one image moves top-1 by several points
FEW_VAL_PER_CLASS = 10


def _warn_small_validation(data: DataBundle, cfg: CommonConfig) -> None:
    """Warn when one validation image moves top-1 by several points, naming the selections this run makes on
    the validation split and which of them are built for that."""
    n = data.counts.get("val", 0)
    if data.val_loader is None or n >= FEW_VAL_PER_CLASS * data.num_classes:
        return
    robust: list[str] = []
    noisy: list[str] = []
    choice = getattr(cfg, "epoch_choice", "last")
    (robust if choice == "last" else noisy).append(f"the epoch choice (--epoch-choice {choice})")
    stop = cfg.accuracy_stop() if hasattr(cfg, "accuracy_stop") else None
    if stop in ACCURACY_STOP_RULES:
        (robust if stop == "loss" else noisy).append(f"the stop rule (--stop-rule {stop})")
    said = []
    if noisy:
        said.append(f"{' and '.join(noisy)} {'selects' if len(noisy) == 1 else 'select'} on it")
    if robust:
        said.append(f"{' and '.join(robust)} {'is' if len(robust) == 1 else 'are'} made for this")
    log.warning("the validation split has %d images (%.1f per class; one image is %.1f points of top-1): "
                "selections on it are noisy%s. More images in a val/ folder help; a larger --val-fraction takes "
                "them from training", n, n / data.num_classes, 100.0 / max(n, 1),
                "".join(f"; {x}" for x in said))


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
    """``--from-ft``: fill ``bundle``'s fresh model with a saved unpruned model (FT or FT-Full) of the same
    architecture and classes."""
    try:
        payload = read_payload(path)
    except ModelError as exc:
        raise ConfigError(f"--from-ft {path}: {exc}") from None
    require_classes(payload["meta"], classes, f"--from-ft {path}")
    try:
        load_checked(bundle.model, payload["state_dict"], source="it")
    except ModelError as exc:
        raise ConfigError(f"--from-ft {path}: not an unpruned {model_name} with this head ({exc}); start from a "
                          "'finetune' run of it") from None
    log.info("starting from the saved model in %s", path)


def saved_start(path: str) -> str | None:
    """What a ``--from-ft`` model is, as a ``--start`` value: 'ft' or 'ft-full', read from the 'finetune' run
    folder that holds it (its ``summary.json``); None when that cannot be told (a model file on its own)."""
    where = Path(path).expanduser()
    summary = (where if where.is_dir() else where.parent) / SUMMARY_FILE
    try:
        method = json.loads(summary.read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return None
    return {"ft": "ft", "ft_full": "ft-full"}.get(method)


def _default_out(command: str, cfg: CommonConfig) -> Path:
    data_name = Path(cfg.data).name or "data"
    base = Path("runs") / f"{command}-{cfg.model.replace(':', '_')}-{data_name}"
    out, n = base, 1
    while holds_files(out):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


