"""Named bundles of settings (``--preset``) and the defaults older runs were made with."""

from __future__ import annotations

from typing import Any

#: options whose default changed, with the value they had before: a run folder or config written
#: before they existed ran with these
LEGACY_DEFAULTS: dict[str, Any] = {"epoch_choice": "top1", "stop_rule": "paper", "importance": "beta",
                                   "latency_tries": 1}

#: Named bundles of settings. ``paper`` is the AAAI 2021 paper's method and optimiser settings at
#: 224 px (the defaults are tuned for short CPU runs: README, "Training"); ``quick`` is README's main
#: job, a search that ends within minutes on a laptop CPU: 64 px, 3 epochs a phase, stop at 30 % fewer
#: FLOPs; ``legacy`` restores the defaults README's earlier measurements were made with (the epoch of
#: best validation top-1, the paper's stop rule, the paper's importance).
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
