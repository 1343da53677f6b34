"""Typed run configuration, presets and YAML files.

One dataclass per command holds every option. The CLI builds its flags from these fields, so a
field added here is at once a flag (``--field-name``), a YAML key (``field_name`` or
``field-name``) and an attribute. Precedence, lowest first: field default, ``--preset``, the
``--config`` YAML file, command-line flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with the help text and choices the CLI shows."""
    return field(default=default, metadata={"help": help, "choices": choices})


#: Named bundles of settings. ``paper`` is the AAAI 2021 paper's method and optimiser settings at
#: 224 px (the defaults are tuned for short CPU runs: README, "Training"); ``quick`` is README's main
#: job, a search that ends within minutes on a laptop CPU: 64 px, 3 epochs a phase, stop at 30 % fewer
#: FLOPs; ``legacy`` restores the defaults README's earlier measurements were made with (the epoch of
#: best validation top-1, the paper's stop rule, the paper's importance).
#: options whose default changed, with the value they had before: a run folder or config written
#: before they existed ran with these
LEGACY_DEFAULTS: dict[str, Any] = {"epoch_choice": "top1", "stop_rule": "paper", "importance": "beta"}

PRESETS: dict[str, dict[str, Any]] = {
    "legacy": LEGACY_DEFAULTS,
    "quick": {
        "image_size": 64,
        "epochs": 3,
        "target_flops_reduction": 0.3,
    },
    "paper": {
        "lr_head": 0.005,
        "lr_backbone": 0.0005,
        "momentum": 0.9,
        "weight_decay": 0.005,
        "image_size": 224,
        "stop_rule": "paper",
        "importance": "beta",
    },
}


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

    image_size: int | None = option(None, "training crop size in pixels (default: 224 as in the paper, or a "
                                          "recipe's own, e.g. 96 for digits)")
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

    model: str = option("efficientnet_lite0", "torchvision name, timm:NAME, or efficientnet_lite0")
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


@dataclass
class FinetuneConfig(CommonConfig):
    """``transtailor finetune``: FT (head only) or FT-Full (all layers)."""

    mode: str = option("full", "'head' trains only the new classifier (FT); 'full' trains every layer (FT-Full)",
                       ("head", "full"))


#: the options each pruning criterion declares (:mod:`transtailor.pruning.criteria`), by criterion name:
#: a dataclass of :func:`option` fields. A config with a ``method_options`` field takes their fields as
#: flat options (``--taylor-on weight``, ``taylor_on: weight``) and keeps them in that dict.
METHOD_OPTIONS: dict[str, type] = {}


def register_method_options(owner: str, part: type) -> None:
    """Declare ``owner``'s options (a dataclass of :func:`option` fields); names are unique across owners."""
    taken = {name: o for name, (o, _) in method_option_fields().items() if o != owner}
    for f in dataclasses.fields(part):
        if f.name in taken:
            raise ValueError(f"option {f.name!r} of {owner!r} is already declared by {taken[f.name]!r}")
    METHOD_OPTIONS[owner] = part


def method_option_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every declared method option: name -> (its criterion, its field)."""
    return {f.name: (owner, f) for owner, part in METHOD_OPTIONS.items() for f in dataclasses.fields(part)}


def build_method_options(owner: str, given: Mapping[str, Any]) -> Any | None:
    """``owner``'s options object (None when it declares none): the values in ``given`` that are its own,
    its defaults for the rest, checked against their choices and by the part's own ``__post_init__``."""
    part = METHOD_OPTIONS.get(owner)
    if part is None:
        return None
    names = _field_names(part)
    options = part(**{k: v for k, v in given.items() if k in names})
    _check_choices(options)
    return options


def method_options_of(owner: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`build_method_options` as a plain dict."""
    options = build_method_options(owner, given)
    return {} if options is None else dataclasses.asdict(options)


def _method_options_field() -> Any:
    return field(default_factory=dict, metadata={"help": "the criteria's own options, by name (each is also a "
                                                 "flag of its own, e.g. --taylor-on)", "flat": True})


@dataclass
class PruningOptions:
    """How every method that prunes in steps removes filters and fine-tunes after each step."""

    ft_epochs: int | None = option(None, "epochs of the initial FT (new head only; default: --epochs)")
    flops_step: float | None = option(0.1, "fraction of the original model's FLOPs removed per iteration")
    finetune_epochs: int | None = option(None, "epochs of fine-tuning after each pruning step (default: --epochs)")
    min_channels: int = option(1, "every layer keeps at least this many filters")
    max_layer_fraction: float = option(0.3, "no layer loses more than this fraction of its filters in one step")
    distill: str = option("none", "fine-tune each sub-model to also match a teacher's soft outputs: 'none', "
                          "'previous' (the sub-model before this step's pruning) or a saved model or run folder "
                          "(e.g. an FT-Full run on the same classes)")
    distill_weight: float = option(0.5, "weight of the distillation term (the cross-entropy gets 1 - weight)")
    distill_temperature: float = option(4.0, "softmax temperature of the distillation term")
    cost: str = option("macs", "what a pruning step's budget is spent in: macs, or latency measured on "
                       "--latency-target (a per-layer latency table, cached on disk)", ("macs", "latency"))
    round_to: int | None = option(None, "every pruned layer keeps a multiple of this many channels (a layer "
                                  "narrower than it is left alone); default: per --latency-target, see README")
    latency_step: float | None = option(None, "with --cost latency: share of the original model's measured latency "
                                        "removed per iteration (default: --flops-step)")
    latency_cache: str | None = option(None, "folder of the latency tables (default: $TRANSTAILOR_CACHE/latency "
                                       "or ~/.cache/transtailor/latency)")
    method_options: dict[str, Any] = _method_options_field()

    def validate(self) -> None:
        if self.round_to is not None and self.round_to < 1:
            raise ConfigError(f"--round-to must be at least 1, got {self.round_to}")
        if self.latency_step is not None and not 0.0 < self.latency_step < 1.0:
            raise ConfigError(f"--latency-step must be in (0, 1), got {self.latency_step}")
        for name in ("ft_epochs", "finetune_epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.flops_step is not None and not 0.0 < self.flops_step < 1.0:
            raise ConfigError(f"--flops-step must be in (0, 1), got {self.flops_step}")
        if self.min_channels < 1:
            raise ConfigError(f"--min-channels must be at least 1, got {self.min_channels}")
        if not 0.0 < self.max_layer_fraction <= 1.0:
            raise ConfigError(f"--max-layer-fraction must be in (0, 1], got {self.max_layer_fraction}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ConfigError(f"--distill-weight must be in [0, 1], got {self.distill_weight}")
        if self.distill_temperature <= 0:
            raise ConfigError(f"--distill-temperature must be positive, got {self.distill_temperature}")
        if self.distill not in ("none", "previous") and not Path(self.distill).expanduser().exists():
            raise ConfigError(f"--distill {self.distill}: no such model file or run folder "
                              "(or use 'none' or 'previous')")
        _check_method_options(self.method_options)


@dataclass
class IterativeConfig(PruningOptions, CommonConfig):
    """Options of every method that prunes in steps and fine-tunes after each (search, prune)."""

    from_ft: str | None = option(None, "start from this FT model instead of training one (a 'finetune --mode "
                                 "head' run folder or model file of the same model and classes; --ft-epochs "
                                 "is then unused)")
    target_speedup: float | None = option(None, "stop once the measured speed-up at --latency-batch reaches this "
                                          "(e.g. 1.5)")
    resume: str | None = option(None, "continue the run in this folder from its last complete iteration")

    def validate(self) -> None:
        CommonConfig.validate(self)
        PruningOptions.validate(self)
        if self.target_speedup is not None and not self.target_speedup > 1.0:
            raise ConfigError(f"--target-speedup must be above 1, got {self.target_speedup}")
        if (self.cost == "latency" or self.target_speedup is not None) and not self.latency:
            raise ConfigError("--cost latency and --target-speedup measure latency: drop --no-latency")
        if self.val_fraction <= 0:
            raise ConfigError("pruning methods select sub-models on validation: --val-fraction must be > 0 "
                              "(a val/ folder, when the data has one, is used instead)")
        if self.from_ft is not None and not Path(self.from_ft).expanduser().exists():
            raise ConfigError(f"--from-ft {self.from_ft}: no such model file or run folder")


@dataclass
class SearchConfig(IterativeConfig):
    """``transtailor search``: the iterative TransTailor sub-model search (Algorithm 1)."""

    importance: str = option("taylor", "filter importance, any pruning criterion (transtailor prune --help lists "
                             "them): 'taylor' (default: the first-order Taylor score of each filter's output, "
                             "i.e. beta at alpha = 1: one pass over the train split) or 'beta' (the paper's "
                             "TransTailor: alpha trained for --alpha-epochs first); level within noise in the "
                             "measurements, taylor at under half the cost")
    importance_ft: str = option("none", "how the importance enters fine-tuning: 'none' (plain fine-tuning, measured "
                                "best), 'preserve' (function kept, the importance scales the gradients), 'literal' "
                                "(Eq. 6), 'normalized' (importance / layer mean)",
                                ("none", "preserve", "literal", "normalized"))
    tau: float = option(0.3, "stop rule paper: stop when val top-1 falls this many points below the last kept "
                        "sub-model")
    stop_rule: str = option("loss", "when the search stops: 'loss' (val cross-entropy more than --loss-tolerance "
                            "above the lowest so far; robust on small validation splits), 'paper' (val top-1 more "
                            "than --tau points below the last kept sub-model), 'none'", ("loss", "paper", "none"))
    loss_tolerance: float = option(0.05, "stop rule loss: relative rise of the val loss over its lowest that stops")
    max_iterations: int = option(10, "stop after this many pruning iterations")
    target_flops_reduction: float | None = option(None, "stop once FLOPs are reduced by this fraction")

    def validate(self) -> None:
        super().validate()
        _non_negative(self, "tau", "loss_tolerance")
        if self.flops_step is None:
            raise ConfigError("--flops-step needs a value")
        if self.target_flops_reduction is not None and not 0.0 < self.target_flops_reduction < 1.0:
            raise ConfigError(f"--target-flops-reduction must be in (0, 1), got {self.target_flops_reduction}")
        if self.max_iterations < 1:
            raise ConfigError(f"--max-iterations must be at least 1, got {self.max_iterations}")


@dataclass
class PruneConfig(IterativeConfig):
    """``transtailor prune``: a pruning baseline to a FLOPs budget, from the same FT model as the search."""

    method: str = option("l1", "filter criterion (transtailor prune --help lists them)")
    flops_reduction: float = option(0.2, "fraction of the original FLOPs to remove in all")
    flops_step: float | None = option(None, "remove this fraction per step, fine-tuning after each "
                                      "(default: all at once)")
    scope: str | None = option(None, "rank filters across all layers ('global'), or each against its own layer "
                               "('layer'); default: the criterion's own (layer for l1 and sfp, as their papers "
                               "prune every layer by its own norms, global for the others)", ("global", "layer"))
    flops_aware: bool | None = option(None, "rank filters by score per FLOP saved (default: the criterion's own, "
                                      "on for gbn only)")

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.flops_reduction < 1.0:
            raise ConfigError(f"--flops-reduction must be in (0, 1), got {self.flops_reduction}")
        if self.cost == "latency" and self.target_speedup is None:
            raise ConfigError("prune --cost latency spends a latency budget: give it with --target-speedup "
                              "(e.g. 1.3) instead of --flops-reduction")


#: the rows of ``compare`` that are not pruning criteria: fine-tuning and the transfer regularisers
FINETUNE_METHODS = ("ft", "ft-full", "l2", "l2sp", "delta")


@dataclass
class CompareConfig(PruningOptions, CommonConfig):
    """``transtailor compare``: methods x seeds (x FLOPs budgets) on one dataset and model, one table.

    The pruning options and every criterion's own options reach the runs that use them; TransTailor's
    row is the paper's method (importance beta) at each budget, with its accuracy stop off."""

    methods: str = option("ft,ft-full,l2sp,delta,l1,taylor,sfp,gbn,random,transtailor",
                          "comma-separated methods: ft, ft-full, l2, l2sp, delta, transtailor and every pruning "
                          "criterion (transtailor prune --help lists them)")
    seeds: str = option("0,1,2", "comma-separated seeds")
    budgets: str = option("0.2,0.3", "comma-separated budgets of the pruning methods: FLOPs reductions, or with "
                          "--cost latency measured speed-ups (e.g. 1.3,1.6)")
    importance_ft: str = option("none", "transtailor rows: how beta enters fine-tuning (see search --help)",
                                ("none", "preserve", "literal", "normalized"))

    def method_list(self) -> list[str]:
        return [m.strip() for m in self.methods.split(",") if m.strip()]

    def seed_list(self) -> list[int]:
        return [int(x) for x in self.seeds.split(",") if x.strip()]

    def budget_list(self) -> list[float]:
        return [float(x) for x in self.budgets.split(",") if x.strip()]

    def validate(self) -> None:
        CommonConfig.validate(self)
        PruningOptions.validate(self)
        if not self.method_list():
            raise ConfigError("--methods: none given")
        try:
            seeds, budgets = self.seed_list(), self.budget_list()
        except ValueError:
            raise ConfigError(f"--seeds and --budgets are comma-separated numbers, got {self.seeds!r} and "
                              f"{self.budgets!r}") from None
        if not seeds:
            raise ConfigError("--seeds needs at least one seed")
        if self.cost == "latency":
            if any(not b > 1.0 for b in budgets):
                raise ConfigError(f"with --cost latency, --budgets are speed-ups above 1 (e.g. 1.3,1.6), got "
                                  f"{self.budgets}")
            if not self.latency:
                raise ConfigError("--cost latency measures latency: drop --no-latency")
        elif any(not 0.0 < b < 1.0 for b in budgets):
            raise ConfigError(f"--budgets must be in (0, 1), got {self.budgets}")
        if self.flops_step is None or not 0.0 < self.flops_step < 1.0:
            raise ConfigError(f"--flops-step must be in (0, 1), got {self.flops_step}")
        if self.val_fraction <= 0:
            raise ConfigError("compare selects sub-models on validation: --val-fraction must be > 0")


@dataclass
class ExportConfig:
    """``transtailor export``: a deployable TorchScript, ONNX or torch.export file."""

    model_path: str = option("", "a saved model file or a run folder (its best/ sub-model)")
    format: str = option("torchscript", "file format: torchscript (torch.jit.trace, deprecated in recent torch), "
                         "onnx, or export (torch.export, a .pt2 file: torch.export.load(path).module())",
                         ("torchscript", "onnx", "export"))
    output: str | None = option(None, "file to write (default: beside the model)")
    image_size: int | None = option(None, "example input size (default: the size the model was trained at)")
    force: bool = option(False, "replace --output if it exists (never a run's own files)")

    def validate(self) -> None:
        if self.image_size is not None:
            _positive(self, "image_size")
        _check_choices(self)


@dataclass
class BenchmarkConfig:
    """``transtailor benchmark``: re-measure a run's sub-models (or one model file) on this machine."""

    model_path: str = option("", "a search or prune run folder (every iteration against iteration 0), a saved "
                             "model file, or an exported .onnx file")
    latency_target: str = option("auto", "cpu (PyTorch eager), onnxruntime (ONNX Runtime's CPU provider), cuda; "
                                 "auto: cuda when a GPU is visible, else cpu", ("auto", "cpu", "onnxruntime", "cuda"))
    latency_batch: int = option(32, "batch size (batch 1 is always measured too)")
    rounds: int = option(5, "interleaved rounds; the speed-up is the median of the per-round ratios")
    threads: int = option(0, "CPU threads (torch, or ONNX Runtime's intra-op threads; 0: the library's default)")
    image_size: int | None = option(None, "input size (default: the size the model was trained at)")
    reference: str | None = option(None, "time a single model against this one (model file, run folder or .onnx)")
    output: str | None = option(None, "where to write latency.json (default: in the run folder or beside the file)")

    def validate(self) -> None:
        if not self.model_path:
            raise ConfigError("give a run folder or model file to benchmark")
        if self.image_size is not None:
            _positive(self, "image_size")
        _positive(self, "latency_batch", "rounds")
        _non_negative(self, "threads")
        _check_choices(self)


@dataclass
class ReportConfig:
    """``transtailor report``: the per-iteration table and the plots of a search run."""

    run_dir: str = option("", "a search run folder")

    def validate(self) -> None:
        pass


@dataclass
class EvaluateConfig(MachineOptions, DataSource):
    """``transtailor evaluate``: re-evaluate a saved model on a data set (the data options as in training,
    to rebuild the same splits)."""

    model_path: str = option("", "a saved model file or a run folder")
    image_size: int | None = option(None, "evaluation size (default: the size the model was trained at)")
    crop_pct: float | None = option(None, "evaluation centre crop fraction (default: as trained)")
    batch_size: int = option(64, "images per evaluation step")

    def validate(self) -> None:
        DataSource.validate(self)
        MachineOptions.validate(self)
        _check_size_and_crop(self)
        _positive(self, "batch_size")
        _check_choices(self)


C = TypeVar("C")


def resolve(cls: type[C], *, flags: Mapping[str, Any] | None = None, config_file: str | Path | None = None) -> C:
    """Build a validated ``cls`` from defaults, preset, YAML file and explicit flags."""
    flags = dict(flags or {})
    from_file = load_yaml(config_file) if config_file else {}
    preset = flags.get("preset", from_file.get("preset"))
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values.update({k: v for k, v in PRESETS[preset].items() if k in _field_names(cls)})
    values.update(from_file)
    values.update(flags)
    return from_dict(cls, values)


def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
    """Build ``cls`` from a mapping, checking names and types; raises :class:`ConfigError`."""
    names = _field_names(cls)
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    flat = method_option_fields() if "method_options" in names else {}
    given: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key == "method_options" and key in names:
            if not isinstance(value, Mapping):
                raise ConfigError("option 'method_options' must be a mapping of option: value")
            given.update({str(k).replace("-", "_"): v for k, v in value.items()})
            continue
        if key in flat:
            given[key] = value
            continue
        if key not in names:
            raise _unknown_option(str(raw_key), [*names, *flat])
        kwargs[key] = _coerce(key, value, hints[key])
    if given:
        kwargs["method_options"] = {k: _coerce_method_option(k, v) for k, v in given.items()}
    cfg = cls(**kwargs)
    cfg.validate()  # type: ignore[attr-defined]
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of options."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    return data


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain dict (what ``config.yaml`` in a run folder holds); method options flat."""
    out = dataclasses.asdict(cfg)
    out.update(out.pop("method_options", None) or {})
    return out


def _unknown_option(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    return ConfigError(f"unknown option {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))


def _coerce_method_option(key: str, value: Any) -> Any:
    fields = method_option_fields()
    if key not in fields:
        raise _unknown_option(key, sorted(fields))
    owner = fields[key][0]
    return _coerce(key, value, get_type_hints(METHOD_OPTIONS[owner])[key])


def _check_method_options(values: Mapping[str, Any]) -> None:
    """Every method option is declared and passes its criterion's checks. Before any criterion is
    imported nothing is declared: ``prune`` and ``search`` check them against the registry then."""
    fields = method_option_fields()
    if not fields:
        return
    for key in values:
        if key not in fields:
            raise _unknown_option(key, sorted(fields))
    for owner in {fields[k][0] for k in values}:
        build_method_options(owner, values)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def with_legacy_defaults(saved: Mapping[str, Any], cls: type | None = None) -> dict[str, Any]:
    """``saved`` (a stored config) with :data:`LEGACY_DEFAULTS` filled in where it predates an option
    (only ``cls``'s options, when given)."""
    names = None if cls is None else set(_field_names(cls))
    return {**{k: v for k, v in LEGACY_DEFAULTS.items() if names is None or k in names}, **saved}


# options where +inf means "never" (e.g. --tau inf: no accuracy-drop stop)
INFINITE_OK = frozenset({"tau"})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    if value is None:
        if type(None) in get_args(hint):
            return None
        raise ConfigError(f"option {key!r} needs a value")
    base = next((a for a in get_args(hint) if a is not type(None)), hint) if get_args(hint) else hint
    if get_origin(base) is Literal:
        base = str
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            number = float(value)
            if math.isnan(number) or (math.isinf(number) and not (key in INFINITE_OK and number > 0)):
                raise ConfigError(f"option {key!r} must be a finite number, got {value!r}")
            return number
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {key!r} expects {base.__name__}, got {value!r}") from None
    return value


def _check_size_and_crop(cfg: Any) -> None:
    if cfg.image_size is not None:
        _positive(cfg, "image_size")
    if cfg.crop_pct is not None and not 0.0 < cfg.crop_pct <= 1.0:
        raise ConfigError(f"--crop-pct must be in (0, 1], got {cfg.crop_pct}")


def _positive(cfg: Any, *names: str) -> None:
    for n in names:
        if getattr(cfg, n) <= 0:
            raise ConfigError(f"--{n.replace('_', '-')} must be positive, got {getattr(cfg, n)}")


def _non_negative(cfg: Any, *names: str) -> None:
    for n in names:
        if getattr(cfg, n) < 0:
            raise ConfigError(f"--{n.replace('_', '-')} must not be negative, got {getattr(cfg, n)}")


def _fraction(cfg: Any, name: str, *, lo_open: bool) -> None:
    v = getattr(cfg, name)
    ok = (0.0 < v < 1.0) if lo_open else (0.0 <= v < 1.0)
    if not ok:
        rng = "(0, 1)" if lo_open else "[0, 1)"
        raise ConfigError(f"--{name.replace('_', '-')} must be in {rng}, got {v}")


def _check_choices(cfg: Any) -> None:
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        v = getattr(cfg, f.name)
        if choices and v is not None and v not in choices:
            raise ConfigError(f"--{f.name.replace('_', '-')} must be one of {', '.join(choices)}, got {v!r}")
