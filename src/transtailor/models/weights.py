"""Loading weight files with messages that say what does not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from ..errors import ModelError


def _looks_like_torch_file(path: Path) -> bool:
    """A zip archive (torch.save since 1.6) or a pickle (its legacy format): the first bytes say which."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``path`` without unpickling code (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"weights file {p} does not exist")
    if not _looks_like_torch_file(p):
        raise ModelError(f"weights file {p} is not a PyTorch file (neither a zip archive nor a pickle, as "
                         "torch.save writes); save it with torch.save(model.state_dict(), path)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot read weights file {p} as a plain tensor file ({first[:160]}); "
            "save it with torch.save(model.state_dict(), path)"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"weights file {p} does not hold a state_dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_checked(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` into ``model`` strictly; on failure name the first tensor that does not fit."""
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in state:
            raise ModelError(f"{source} does not fit the model: tensor {name!r} is missing from it")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ModelError(
                f"{source} does not fit the model: tensor {name!r} has shape {tuple(state[name].shape)}, "
                f"the model expects {tuple(tensor.shape)}"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise ModelError(f"{source} does not fit the model: it has tensor {extra[0]!r}, which the model lacks")
    model.load_state_dict(state, strict=True)
