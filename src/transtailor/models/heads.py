"""Replace a classifier's ImageNet head with one for the target classes."""

from __future__ import annotations

from typing import Any, cast

import torch.nn as nn

from ..errors import ModelError


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Replace the final classifier with a fresh ``num_classes``-way one; return its module name.

    timm models use their own ``reset_classifier``; other models (torchvision's ResNet ``fc``,
    VGG/EfficientNet/MobileNet ``classifier[-1]``, a user's own) have their last ``nn.Linear``
    replaced by one with the same input width.
    """
    timm: Any = model
    if hasattr(timm, "reset_classifier") and hasattr(timm, "get_classifier"):
        timm.reset_classifier(num_classes)
        return _name_of(model, timm.get_classifier())
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ModelError(
            f"{type(model).__name__} has no nn.Linear classifier to replace; give it one, "
            "or pass a model whose head is already sized for the target classes"
        )
    old: Any = model.get_submodule(last)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    _set_submodule(model, last, new)
    return last


def head_name(model: nn.Module) -> str:
    """Name of the classifier module (the last ``nn.Linear``)."""
    if hasattr(model, "get_classifier"):
        return _name_of(model, cast(Any, model).get_classifier())
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ModelError(f"{type(model).__name__} has no nn.Linear classifier")
    return names[-1]


def _name_of(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ModelError("could not locate the classifier module")


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
