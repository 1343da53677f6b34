"""The parts every command's config is composed of: where the data are, the model, the training,
the machine and latency measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .fields import _check_choices, _check_size_and_crop, _fraction, _non_negative, _positive, option
from .presets import PRESETS

@dataclass
class DataSource:
    """Where the images are, how they are split and loaded (what training and evaluation share)."""

    data: str = option("digits", "an image folder (train/ + test/ [+ val/], or class folders) or a recipe name")
    data_root: str | None = option(None, "folder holding a recipe's official files (caltech256, cub200, ...)")
    val_fraction: float = option(0.1, "fraction of train held out for validation when there is no val/ split")
    test_fraction: float = option(0.2, "fraction held out for test when the data has no test/ split")
    cache: bool = option(False, "decode and resize every image once into memory (fast on small CPU data)")
    workers: int = option(-1, "DataLoader worker processes (-1: automatic)")
    caltech_split: str = option("random", "caltech256 recipes: seeded random images per class, or the lowest "
                                "file numbers ('index')", ("random", "index"))
    caltech_clutter: bool = option(False, "caltech256 recipes: keep the 257.clutter class")
    seed: int = option(0, "random seed (data splits, initialisation, augmentation order)")

    def validate(self) -> None:
        _fraction(self, "val_fraction", lo_open=False)
        _fraction(self, "test_fraction", lo_open=True)
        if self.workers < -1:
            raise ConfigError(f"--workers must be -1 (automatic) or >= 0, got {self.workers}")


@dataclass
class DataOptions(DataSource):
    """The data, and the image size training runs at."""

    image_size: int | None = option(None, "training crop size in pixels (default: the model's native size, 224 "
                                          "for most, 240 for efficientnet_lite1, 260 for lite2; or a recipe's "
                                          "own, e.g. 96 for digits)")
    crop_pct: float = option(0.875, "evaluation centre crop as a fraction of the resized image")

    def validate(self) -> None:
        super().validate()
        _check_size_and_crop(self)


@dataclass
class MachineOptions:
    """Where the work runs."""

    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    threads: int = option(0, "CPU threads for torch (0: torch's default)")

    def validate(self) -> None:
        _non_negative(self, "threads")


@dataclass
class ModelOptions:
    """Which network and which starting weights."""

    model: str = option("efficientnet_lite0", "efficientnet_lite0/1/2 (ImageNet weights that work offline), a "
                                              "torchvision name, or timm:NAME")
    weights: str = option("default", "'default' (pretrained), 'none' (random init) or a .pth file")

    def validate(self) -> None:
        pass


@dataclass
class TrainingOptions:
    """How every training phase optimises, and the transfer regulariser of full fine-tuning."""

    batch_size: int = option(32, "images per training step")
    epochs: int = option(4, "training epochs")
    lr_head: float = option(0.05, "learning rate of the new classifier head")
    lr_backbone: float = option(0.005, "learning rate of the pretrained layers")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(0.005, "SGD weight decay")
    label_smoothing: float = option(0.0, "label smoothing of the training cross-entropy (e.g. 0.1): each image's "
                                    "target keeps 1 - this on its class and spreads the rest over all classes")
    regularizer: str = option("none", "transfer regulariser during fine-tuning: l2 (towards zero), l2sp (towards "
                              "the starting weights), delta (feature maps towards the starting model's, with "
                              "channel attention); replaces --weight-decay", ("none", "l2", "l2sp", "delta"))
    reg_alpha: float | None = option(None, "regulariser strength (default 0.01 for l2, l2sp and delta)")
    reg_beta: float = option(0.01, "l2sp/delta: L2 strength on the new head")
    delta_images: int = option(64, "delta: training images used to measure the channel attention")
    schedule: str = option("cosine", "learning-rate schedule", ("cosine", "step", "constant"))
    epoch_choice: str = option("last", "which epoch of each training phase is kept: the last (no selection on the "
                               "validation images), the best validation top-1 or the lowest validation loss",
                               ("last", "top1", "loss"))

    def validate(self) -> None:
        _positive(self, "batch_size", "delta_images")
        _non_negative(self, "epochs", "lr_head", "lr_backbone", "momentum", "weight_decay", "reg_beta")
        if self.reg_alpha is not None:
            _non_negative(self, "reg_alpha")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class LatencyOptions:
    """Where and how the latency of saved models is measured."""

    latency: bool = option(True, "measure the latency of every saved model on --latency-target (batch 1 and "
                           "--latency-batch) and, for pruned models, the speed-up over the original")
    latency_target: str = option("auto", "where latency is measured: cpu (PyTorch eager, --threads), onnxruntime "
                                 "(ONNX Runtime's CPU provider on the exported graph), cuda (the GPU, bf16 "
                                 "autocast, channels_last); auto: cuda when training on a GPU, else cpu",
                                 ("auto", "cpu", "onnxruntime", "cuda"))
    latency_batch: int = option(32, "batch size of the latency measurement (batch 1 is always measured too)")
    latency_rounds: int = option(5, "rounds of the interleaved latency comparison (median of per-round ratios)")

    def validate(self) -> None:
        _positive(self, "latency_batch", "latency_rounds")


@dataclass
class CommonConfig(LatencyOptions, MachineOptions, TrainingOptions, ModelOptions, DataOptions):  # fields: data first
    """Options shared by every command that trains: data, model, training, machine, latency, run folder."""

    out: str | None = option(None, "run folder to write (default: runs/<command>-<model>-<data>)")
    preset: str | None = option(None, "named settings applied under the config file and flags", tuple(PRESETS))

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that make no sense."""
        for part in (DataOptions, ModelOptions, TrainingOptions, MachineOptions, LatencyOptions):
            part.validate(self)
        _check_choices(self)
