"""Save and load models, pruned or not, without pickled code.

A model file holds plain data only (tensors, strings, numbers), so it loads with
``torch.load(..., weights_only=True)``: the architecture spec (``source``/``name``/``num_classes``),
the state_dict, the input normalisation, and metadata (class names, image size). Loading rebuilds
the named architecture and resizes every conv, BatchNorm and linear layer to the saved tensors,
which restores physically pruned shapes. A user's own architecture is passed as ``model=``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import ModelError
from ..runs import MODEL_FILE, atomic_write
from .weights import load_checked
from .zoo import ModelBundle, build_architecture

FORMAT = "transtailor.model"
VERSION = 1


def save_model(path: str | Path, bundle: ModelBundle, meta: dict[str, Any] | None = None) -> Path:
    """Write ``bundle`` to ``path`` atomically; a model with NaN or infinite weights is refused."""
    state = {k: v.detach().cpu().clone() for k, v in bundle.model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelError(f"training diverged: {len(bad)} tensors of the model hold NaN or infinite values "
                         f"(first: {bad[0]}); nothing saved to {path}. Lower --lr-head / --lr-backbone")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": dict(bundle.spec),
        "head": bundle.head,
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "meta": {**bundle.meta, **(meta or {})},
        "state_dict": state,
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh), binary=True)


def read_payload(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """The checked contents of a model file (spec, state_dict, meta, ...). ``path`` may be a run folder."""
    p = resolve_model_path(path)
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds; the user needs one line
        raise ModelError(_unreadable(p, exc)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{p} is not a TransTailor model file (save one with transtailor.save_model)")
    if payload.get("version", 0) > VERSION:
        raise ModelError(f"{p} was written by a newer TransTailor (format {payload['version']}); upgrade to read it")
    payload["path"] = str(p)
    return payload


def _unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in one whole sentence (torch's own messages run for a
    paragraph and name its internals)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        return f"{path} is empty: the write that made it did not finish; save or copy the model again"
    if "Unsupported global" in str(exc):
        return f"{path} needs arbitrary code to be unpickled, which TransTailor refuses; save the model's state_dict instead"
    if head == b"PK\x03\x04":  # a zip archive, as torch.save writes: its index is at the end
        return (f"{path} is damaged or cut short (its archive cannot be read), e.g. by a full disk, a kill during "
                "the write or an unfinished copy; save or copy the model again")
    return (f"{path} is not a model file (it was not written by torch.save; it starts with {head!r}); "
            "give a model.pt that TransTailor saved, or a run folder")


def load_bundle(path: str | Path, model: nn.Module | None = None, map_location: str = "cpu") -> ModelBundle:
    """Load a saved model with its spec and metadata. ``path`` may be a file or a run folder."""
    payload = read_payload(path, map_location)
    spec = payload["spec"]
    if model is None:
        model = build_architecture(spec)
    state = payload["state_dict"]
    fit_shapes(model, state)
    load_checked(model, state, source=payload["path"])
    model.eval()
    return ModelBundle(model, spec, tuple(payload["mean"]), tuple(payload["std"]), payload["head"], payload["meta"])


def load_model(path: str | Path, model: nn.Module | None = None, map_location: str = "cpu") -> nn.Module:
    """Load a saved (possibly pruned) model, in eval mode.

    ``path`` is a model file or a run folder. For a user's own architecture pass an instance of it
    as ``model``; it is resized to the saved shapes and filled with the saved weights.
    """
    return load_bundle(path, model, map_location).model


def resolve_model_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        for candidate in (p / "best" / MODEL_FILE, p / MODEL_FILE):
            if candidate.is_file():
                return candidate
        raise ModelError(f"run folder {p} holds no {MODEL_FILE}; did that run finish?")
    if not p.is_file():
        raise ModelError(f"model {p} does not exist")
    return p


def fit_shapes(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize convs, BatchNorms and linears of ``model`` to the tensor shapes in ``state``."""
    for name, m in model.named_modules():
        prefix = f"{name}." if name else ""
        weight = state.get(prefix + "weight")
        if isinstance(m, nn.Conv2d) and weight is not None:
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            m.out_channels = weight.shape[0]
            if depthwise:
                m.groups = m.in_channels = weight.shape[0]
            else:
                m.in_channels = weight.shape[1] * m.groups
            _reset(m, "weight", weight.shape)
            if m.bias is not None:
                _reset(m, "bias", (weight.shape[0],))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and prefix + "running_mean" in state:
            n = state[prefix + "running_mean"].shape[0]
            m.num_features = n
            for attr in ("weight", "bias"):
                if getattr(m, attr, None) is not None:
                    _reset(m, attr, (n,))
            m.running_mean = torch.zeros(n)
            m.running_var = torch.ones(n)
        elif isinstance(m, nn.Linear) and weight is not None:
            m.out_features, m.in_features = weight.shape
            _reset(m, "weight", weight.shape)
            if m.bias is not None:
                _reset(m, "bias", (weight.shape[0],))


def _reset(module: nn.Module, attr: str, shape: Any) -> None:
    old = getattr(module, attr)
    if tuple(old.shape) != tuple(shape):
        setattr(module, attr, nn.Parameter(torch.empty(tuple(shape), dtype=old.dtype), requires_grad=old.requires_grad))
