"""Training: the shared loop, optimiser and schedules, metrics, devices."""

from .device import resolve_device, seed_everything, set_threads
from .loop import FitResult, TrainingDiverged, evaluate, fit, freeze_all_but, set_train_mode, train_epoch
from .optim import make_schedule, make_sgd, param_groups

__all__ = [
    "FitResult",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "freeze_all_but",
    "make_schedule",
    "make_sgd",
    "param_groups",
    "resolve_device",
    "seed_everything",
    "set_threads",
    "set_train_mode",
    "train_epoch",
]
