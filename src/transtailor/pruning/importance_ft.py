"""How the frozen importance β enters fine-tuning (Eq. 6), and how it leaves again at export.

``literal``
    multiply the raw β into the filter outputs, as Eq. 6 reads. β is a gradient magnitude (tiny
    and spread over orders of magnitude), so this changes the function the pretrained weights
    compute and fine-tuning starts from a broken network.
``normalized``
    β divided by its layer's mean (mean 1 per layer): the same, milder.
``preserve`` (default)
    β normalised per layer to mean 1 and clipped to [``PRESERVE_MIN``, ``PRESERVE_MAX``]; the BN
    affine parameters (or the conv's, where no BN follows) are divided by β when it is attached,
    so β·BN'(x) = BN(x): the network computes exactly what it did, and β acts only as a per-filter
    scale on the gradients of those parameters (an importance-weighted learning rate, β² in the
    original parametrisation).
``none``
    plain fine-tuning of the pruned model.

After fine-tuning, :func:`~.gates.fold_gates` multiplies β into the weights, so the exported model
has no gates and, for ``preserve``, is back in the original parametrisation.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .gates import Gates, GateSite, scale_sites

IMPORTANCE_FT_MODES = ("preserve", "literal", "normalized", "none")
PRESERVE_MIN, PRESERVE_MAX = 0.1, 10.0


def importance_values(beta: dict[str, torch.Tensor], mode: str) -> dict[str, torch.Tensor]:
    if mode == "literal":
        return {k: v.float().clone() for k, v in beta.items()}
    out = {}
    for k, v in beta.items():
        v = v.float()
        scaled = v / v.mean().clamp_min(1e-12)
        out[k] = scaled.clamp(PRESERVE_MIN, PRESERVE_MAX) if mode == "preserve" else scaled
    return out


def attach_importance(model: nn.Module, sites: list[GateSite], beta: dict[str, torch.Tensor],
                      mode: str) -> Gates | None:
    """Attach frozen β gates for fine-tuning (``None`` for mode ``none``)."""
    if mode not in IMPORTANCE_FT_MODES:
        raise ValueError(f"importance_ft must be one of {IMPORTANCE_FT_MODES}")
    if mode == "none":
        return None
    device = next(model.parameters()).device
    values = {k: v.to(device) for k, v in importance_values(beta, mode).items()}
    if mode == "preserve":
        scale_sites(model, sites, values, power=-1.0)
    return Gates(sites, values).attach(model)
