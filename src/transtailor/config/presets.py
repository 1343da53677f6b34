"""Named bundles of settings (``--preset``)."""

from __future__ import annotations

from typing import Any

#: Named bundles of settings. ``paper`` is the AAAI 2021 paper's method and optimiser settings at
#: 224 px (the defaults are tuned for short CPU runs: README, "Training"), without recovery; ``quick`` is
#: README's main job, a search that ends within minutes on a laptop CPU: 64 px, 3 epochs a phase, stop at
#: 30 % fewer FLOPs, 6 recovery epochs, the FT-Full start model trained 6 epochs.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "image_size": 64,
        "epochs": 3,
        "target_flops_reduction": 0.3,
        "recover_epochs": 6,
        "ft_epochs": 6,
    },
    "paper": {
        "lr_head": 0.005,
        "lr_backbone": 0.0005,
        "momentum": 0.9,
        "weight_decay": 0.005,
        "image_size": 224,
        "stop_rule": "paper",
        "start": "ft",
        "importance": "beta",
        "recover_epochs": 0,
    },
}
