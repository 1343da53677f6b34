"""Pruning: per-filter gates, target-aware importance, and budgeted physical removal."""

from .gates import Gates, GateSite, find_gate_sites, fold_gates, scale_sites
from .importance import BETA_MODES, accumulate_beta, compute_beta, train_alpha
from .pruner import PruneRecord, prune_to_macs

__all__ = [
    "BETA_MODES",
    "GateSite",
    "Gates",
    "PruneRecord",
    "accumulate_beta",
    "compute_beta",
    "find_gate_sites",
    "fold_gates",
    "prune_to_macs",
    "scale_sites",
    "train_alpha",
]
