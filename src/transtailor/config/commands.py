"""One config per command, composed of the parts (:mod:`.parts`) and the pruning options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError
from .fields import _check_choices, _check_size_and_crop, _non_negative, _positive, option
from .method_options import _check_method_options, _method_options_field
from .parts import CommonConfig, DataSource, MachineOptions

@dataclass
class FinetuneConfig(CommonConfig):
    """``transtailor finetune``: FT (head only) or FT-Full (all layers)."""

    mode: str = option("full", "'head' trains only the new classifier (FT); 'full' trains every layer (FT-Full)",
                       ("head", "full"))


#: ``--recover-epochs`` when not given: what the measurements found best (docs/measurements/recovery.md)
DEFAULT_RECOVER_EPOCHS = 24
#: FT-Full's epochs as the start model (--start ft-full): validation picked 24 of 8, 12, 16 and 24 on cub100
#: (docs/measurements/recovery.md)
DEFAULT_FT_FULL_EPOCHS = 24

#: the --distill values that are not a file: no teacher, the unpruned start model, the model before each step
DISTILL_CHOICES = ("none", "start", "previous")
#: what the teacher trains (--distill-in): the recovery alone, or every step's fine-tuning too
DISTILL_SCOPES = ("recovery", "all")
#: how the returned sub-model's recovery trains besides its length (``recover_epochs``): a finished run resumed
#: with one of them recovers again, and records it in ``recovery_options``; refused where steps are still to
#: train, which they would change
RECOVERY_OPTIONS = ("distill", "distill_weight", "distill_temperature", "label_smoothing", "lr_head", "lr_backbone")
#: the --resolution values that are not a size in px
RESOLUTION_CHOICES = ("auto", "off")


@dataclass
class PruningOptions:
    """How every method that prunes in steps removes filters and fine-tunes after each step."""

    ft_epochs: int | None = option(None, "epochs of the unpruned start model's training (--start ft: the new head, "
                                   f"default --epochs; ft-full: every layer, default {DEFAULT_FT_FULL_EPOCHS})")
    flops_step: float | None = option(0.1, "fraction of the original model's FLOPs removed per iteration")
    finetune_epochs: int | None = option(None, "epochs of fine-tuning after each pruning step (default: --epochs)")
    min_channels: int = option(1, "every layer keeps at least this many filters")
    max_layer_fraction: float = option(0.3, "no layer loses more than this fraction of its filters in one step")
    distill: str | None = option(None, "train the returned sub-model to also match a teacher's soft outputs: "
                                 "'none', 'start' (the unpruned model pruning started from: with --start "
                                 "ft-full, FT-Full), 'previous' (in a step, the sub-model before it; in the "
                                 "recovery, as start) or a saved model or run folder (e.g. an FT-Full run on the "
                                 "same classes; it is also scored as the reference row); default: 'start' when "
                                 "pruning starts from FT-Full (--start ft-full, the default with a target) and "
                                 "there is a recovery, else 'none'")
    distill_in: str = option("recovery", "what the --distill teacher trains: 'recovery' (the returned sub-model's "
                             "recovery alone: measured +0.8 to +0.9 points, where in the steps it changed at "
                             "most 0.14) or 'all' (every step's fine-tuning as well)", DISTILL_SCOPES)
    distill_weight: float = option(0.5, "weight of the distillation term (the cross-entropy gets 1 - weight)")
    distill_temperature: float = option(4.0, "softmax temperature of the distillation term")
    cost: str = option("macs", "what a pruning step's budget is spent in: macs, or latency measured on "
                       "--latency-target (a per-layer latency table, cached on disk)", ("macs", "latency"))
    round_to: int | None = option(None, "every pruned layer keeps a multiple of this many channels (a layer "
                                  "narrower than it is left alone); default: per --latency-target, see README")
    latency_step: float | None = option(None, "with --cost latency: share of the original model's measured latency "
                                        "removed per iteration (default: --flops-step)")
    latency_tries: int = option(3, "with --cost latency: candidate prunings per step, each timed against the "
                                "original, to land the step's measured saving (1: plan through the latency "
                                "table alone)")
    latency_cache: str | None = option(None, "folder of the latency tables (default: $TRANSTAILOR_CACHE/latency "
                                       "or ~/.cache/transtailor/latency)")
    recover_epochs: int | None = option(None, "after the last step, train the returned sub-model this many more "
                                        "epochs on a fresh schedule (one epoch of warm-up, then cosine decay), "
                                        "with the --distill teacher if one is set (previous: the model pruning "
                                        f"started from, as start); 0: none; default {DEFAULT_RECOVER_EPOCHS}")
    recovery_options: dict[str, Any] = field(default_factory=dict, metadata={"cli": False, "help": (
        "the recovery's own values of the RECOVERY_OPTIONS where they differ from the steps': a finished run "
        "resumed with, e.g., --lr-backbone 0.001 recovers again at that rate and records it here, while the "
        "top-level value stays the one its steps trained with")})
    method_options: dict[str, Any] = _method_options_field()

    def for_recovery(self: _P) -> _P:
        """These options as the recovery trains with them: :attr:`recovery_options` over the steps' own."""
        return dataclasses.replace(self, **self.recovery_options) if self.recovery_options else self

    def recovery_epochs(self) -> int:
        """``--recover-epochs``, or its default when not given."""
        return DEFAULT_RECOVER_EPOCHS if self.recover_epochs is None else self.recover_epochs

    def distill_choice(self) -> str:
        """``--distill``, or its default when not given: no teacher."""
        return self.distill or "none"

    def validate(self) -> None:
        if self.round_to is not None and self.round_to < 1:
            raise ConfigError(f"--round-to must be at least 1, got {self.round_to}")
        if self.latency_tries < 1:
            raise ConfigError(f"--latency-tries must be at least 1, got {self.latency_tries}")
        if self.latency_step is not None and not 0.0 < self.latency_step < 1.0:
            raise ConfigError(f"--latency-step must be in (0, 1), got {self.latency_step}")
        if self.recover_epochs is not None and self.recover_epochs < 0:
            raise ConfigError(f"--recover-epochs must not be negative, got {self.recover_epochs}")
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
        distill = self.distill_choice()
        if distill not in DISTILL_CHOICES and not Path(distill).expanduser().exists():
            raise ConfigError(f"--distill {distill}: no such model file or run folder "
                              "(or use 'none', 'start' or 'previous')")
        if distill != "none" and self.distill_in == "recovery" and self.recovery_epochs() == 0:
            raise ConfigError(f"--distill {distill} teaches the recovery (--distill-in recovery), and "
                              "--recover-epochs 0 trains none: give --recover-epochs, or --distill-in all to "
                              "teach the steps")
        _check_method_options(self.method_options)
        unknown = sorted(set(self.recovery_options) - set(RECOVERY_OPTIONS))
        if unknown:
            raise ConfigError(f"recovery_options: {', '.join(unknown)} cannot differ between the steps and the "
                              f"recovery; the options that can: {', '.join(RECOVERY_OPTIONS)}")
        if self.recovery_options:  # the recovery's values pass the same checks
            dataclasses.replace(self, **self.recovery_options, recovery_options={}).validate()


_P = TypeVar("_P", bound="PruningOptions")
_I = TypeVar("_I", bound="IterativeConfig")
_S = TypeVar("_S", bound="SearchConfig")


@dataclass
class IterativeConfig(PruningOptions, CommonConfig):
    """Options of every method that prunes in steps and fine-tunes after each (search, prune)."""

    start: str | None = option(None, "the unpruned model pruning starts from: 'ft' (the paper's: the new head "
                               "trained on the frozen pretrained layers for --ft-epochs, default --epochs) or "
                               "'ft-full' (every layer fine-tuned for --ft-epochs, default "
                               f"{DEFAULT_FT_FULL_EPOCHS}: the model you would otherwise ship, shown as the end "
                               "table's reference row); default: 'ft-full' for a search with --target-speedup or "
                               "--target-flops-reduction, else 'ft' (with --from-ft: what that model was)",
                               ("ft", "ft-full"))
    from_ft: str | None = option(None, "start from this saved unpruned model instead of training it (a 'finetune' "
                                 "run folder or model file of the same model and classes, --mode head for "
                                 "--start ft, --mode full for --start ft-full; --ft-epochs is then unused)")
    target_speedup: float | None = option(None, "stop once the measured speed-up at --latency-batch reaches this "
                                          "(e.g. 1.5)")
    resume: str | None = option(None, "continue the run in this folder from its last complete iteration; a finished "
                                "run given a deeper --target-flops-reduction or --target-speedup (or more "
                                "--max-iterations) prunes on from its last step; given another --recover-epochs, "
                                "--distill (weight, temperature), --label-smoothing or learning rate (--lr-head, "
                                "--lr-backbone), it recovers its sub-model again with them (the steps are not "
                                "repeated)")
    return_iteration: int | None = option(None, "return this iteration's sub-model instead of the search's pick "
                                          "(with --recover-epochs: recover it), e.g. a less pruned one from the "
                                          "end table: resume the finished run with it, the steps are not repeated")
    reference: str | None = option(None, "a saved model or run folder scored on this run's val and test splits "
                                   "beside the result (e.g. a 'finetune --mode full' run on the same data: "
                                   "FT-Full); default: the --start ft-full model, else a saved --distill teacher")
    resolution: str | None = option(None, "also train the unpruned start model at a lower input size and return it "
                                    "instead of the pruned sub-model when its val loss is lower: 'auto' (the "
                                    "largest multiple of 8 px below --image-size whose measured speed-up reaches "
                                    "--target-speedup, or whose MACs reach --target-flops-reduction), a size in "
                                    "px, or 'off'; it trains from the start model for --resolution-epochs with "
                                    "one epoch of warm-up, without the --distill teacher; default: 'auto' for a "
                                    "search with --target-speedup, else 'off'")
    resolution_epochs: int | None = option(None, "how many epochs the --resolution candidate trains; default: "
                                           "half of --recover-epochs, rounded up (with --recover-epochs 0, as "
                                           "long as the start model trained: --ft-epochs)")

    def resolved(self: _I) -> _I:
        """This configuration with every default that depends on other options written out as the value it
        takes (what the run folder's config.yaml records)."""
        return dataclasses.replace(self, recover_epochs=self.recovery_epochs(), start=self.start_point(),
                                   ft_epochs=None if self.from_ft else self.start_epochs(),
                                   resolution=self.resolution_choice(), distill=self.distill_choice(),
                                   resolution_epochs=self.candidate_epochs() if self.resolution_choice() != "off"
                                   else self.resolution_epochs)

    def resolution_choice(self) -> str:
        """``--resolution``, or its default when not given: off."""
        return self.resolution or "off"

    def resolution_size(self) -> int | None:
        """``--resolution`` as a size in px, or None for 'auto' and 'off'."""
        choice = self.resolution_choice()
        return None if choice in RESOLUTION_CHOICES else int(choice)

    def candidate_epochs(self) -> int:
        """``--resolution-epochs``, or its default when not given: half the recovery's length, rounded up, else
        (no recovery) the start model's: a new input size needs a real schedule. Half, not all of it: on
        caltech101, where the candidate competes with the sub-model, 12 epochs were level with 24 (+0.38,
        p = 0.38), and the run's compute stays under 3 times FT-Full's; on cub100 they cost 1.83 points, where
        the sub-model is returned either way (docs/measurements/recovery.md)."""
        if self.resolution_epochs is not None:
            return self.resolution_epochs
        recovery = self.recovery_epochs()
        return (recovery + 1) // 2 if recovery else self.start_epochs()

    def start_point(self) -> str:
        """``--start``, or its default when not given: the paper's FT."""
        return self.start or "ft"

    def distill_choice(self) -> str:
        """``--distill``, or its default when not given: with an FT-Full start and a recovery, that FT-Full (the
        best unpruned model of the run: as the recovery's teacher it was never worse in three pairs, and better
        beyond the noise in two, docs/measurements/recovery.md), else no teacher."""
        if self.distill is not None:
            return self.distill
        return "start" if self.start_point() == "ft-full" and self.recovery_epochs() > 0 else "none"

    def start_epochs(self) -> int:
        """``--ft-epochs``, or its default: how long the unpruned start model trains (FT: --epochs; FT-Full:
        its converged length)."""
        if self.ft_epochs is not None:
            return self.ft_epochs
        return DEFAULT_FT_FULL_EPOCHS if self.start_point() == "ft-full" else self.epochs

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
        if self.reference is not None and not Path(self.reference).expanduser().exists():
            raise ConfigError(f"--reference {self.reference}: no such model file or run folder")
        if self.return_iteration is not None and self.return_iteration < 1:
            raise ConfigError(f"--return-iteration must name a pruned iteration (1 or more), got "
                              f"{self.return_iteration}")
        self._check_resolution()

    def _check_resolution(self) -> None:
        if self.resolution_epochs is not None and self.resolution_epochs < 1:
            raise ConfigError(f"--resolution-epochs must be at least 1, got {self.resolution_epochs} (no "
                              "lower-resolution candidate: --resolution off)")
        choice = self.resolution_choice()
        if choice in RESOLUTION_CHOICES:
            if choice == "auto" and self.target_speedup is None and self.target_flops_reduction_asked() is None:
                raise ConfigError("--resolution auto picks the input size that reaches the target: give "
                                  "--target-speedup or --target-flops-reduction, or a size in px")
            return
        if not choice.isdigit():
            raise ConfigError(f"--resolution must be 'auto', 'off' or a size in px, got {choice!r}")
        size = int(choice)
        if size < 16:
            raise ConfigError(f"--resolution {size} is too small: use at least 16 px")
        if self.image_size is not None and size >= self.image_size:
            raise ConfigError(f"--resolution {size} must be below the run's --image-size {self.image_size}")

    def target_flops_reduction_asked(self) -> float | None:
        """The MAC reduction this command is asked for (the search's target; a prune's amount), if any."""
        return None


#: the stop rules that end a search on validation accuracy, and every --stop-rule value
ACCURACY_STOP_RULES = ("loss", "paper")
STOP_RULES = (*ACCURACY_STOP_RULES, "none")


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
    stop_rule: str | None = option(None, "when the search stops: 'loss' (val cross-entropy more than "
                                   "--loss-tolerance above the lowest so far; robust on small validation splits), "
                                   "'paper' (val top-1 more than --tau points below the last kept sub-model), 'none' "
                                   "(the target alone); default: 'none' with --target-speedup or "
                                   "--target-flops-reduction (the speed asked for is reached, the recovery trains "
                                   "the result), else 'loss'", STOP_RULES)
    loss_tolerance: float = option(0.05, "stop rule loss: relative rise of the val loss over its lowest that stops")
    max_iterations: int = option(10, "stop after this many pruning iterations")
    target_flops_reduction: float | None = option(None, "stop once FLOPs are reduced by this fraction")
    steps: int | None = option(None, "reach the target in this many equal steps instead of --flops-step / "
                               "--latency-step ones: --target-flops-reduction / N of the MACs, or with --cost "
                               "latency (1 - 1 / --target-speedup) / N of the measured time (1: one-shot)")

    def resolved(self: _S) -> _S:
        return dataclasses.replace(IterativeConfig.resolved(self), stop_rule=self.accuracy_stop())

    def start_point(self) -> str:
        """``--start``, or its default when not given: with a target, FT-Full (the user asked for a speed at
        FT-Full's accuracy: it is the reference row, and pruning from it is measured at least as accurate, for
        the compute of FT start plus a separate FT-Full run), else the paper's FT."""
        if self.start is not None:
            return self.start
        return "ft-full" if self.target_speedup is not None or self.target_flops_reduction is not None else "ft"

    def resolution_choice(self) -> str:
        """``--resolution``, or its default when not given: with --target-speedup, 'auto' (the user asked for
        a speed, and a lower input size may reach it more accurately than pruning), else 'off'."""
        if self.resolution is not None:
            return self.resolution
        return "auto" if self.target_speedup is not None else "off"

    def target_flops_reduction_asked(self) -> float | None:
        return self.target_flops_reduction

    def accuracy_stop(self) -> str:
        """``--stop-rule``, or its default when not given: none when a target decides where the search ends."""
        if self.stop_rule is not None:
            return self.stop_rule
        return "none" if self.target_speedup is not None or self.target_flops_reduction is not None else "loss"

    def validate(self) -> None:
        super().validate()
        _non_negative(self, "tau", "loss_tolerance")
        if self.steps is not None:
            if self.steps < 1:
                raise ConfigError(f"--steps must be at least 1, got {self.steps}")
            if self.target_flops_reduction is None and not (self.cost == "latency" and self.target_speedup):
                raise ConfigError("--steps divides a target: give --target-flops-reduction, or --cost latency "
                                  "with --target-speedup")
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

    def target_flops_reduction_asked(self) -> float | None:
        return self.flops_reduction

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
    full_epochs: int | None = option(None, "epochs of the ft-full, l2, l2sp and delta rows (default: --epochs); "
                                     "FT-Full is the reference only when trained to convergence (cub100 at 112 px "
                                     "gained 2.3 points from 12 to 24 epochs)")
    start: str = option("ft", "the unpruned model each seed's pruning rows start from: 'ft' (that seed's FT row, "
                        "the paper's) or 'ft-full' (that seed's FT-Full row, trained --full-epochs; with --ft-epochs, "
                        "an FT-Full run of that many epochs)", ("ft", "ft-full"))

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
        if not budgets:
            raise ConfigError("--budgets needs at least one budget (e.g. 0.2,0.3, or 1.3,1.6 with --cost latency)")
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
        if self.full_epochs is not None and self.full_epochs < 1:
            raise ConfigError(f"--full-epochs must be at least 1, got {self.full_epochs}")


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
    output: str | None = option(None, "where to write the table as JSON (default: latency.json in the run folder, "
                                "or NAME.latency.json beside the file NAME)")
    force: bool = option(False, "replace --output if it exists (never a run's own files)")

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
