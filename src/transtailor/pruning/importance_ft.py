"""How the frozen importance β enters fine-tuning (Eq. 6), and how it leaves again at export.

``literal``
    multiply the raw β into the filter outputs, as Eq. 6 reads. β is a gradient magnitude (tiny
    and spread over orders of magnitude), so this changes the function the pretrained weights
    compute and fine-tuning starts from a broken network.
``normalized``
    β divided by its layer's mean (mean 1 per layer): the same, milder.
``preserve``
    β normalised per layer to mean 1 and clipped to [``PRESERVE_MIN``, ``PRESERVE_MAX``]. Dividing
    the BN affine parameters θ (or the conv's, where no BN follows) by β and multiplying β into
    the output, β·BN'(x) = BN(x), keeps the network's function; SGD on θ' = θ/β then moves θ by
    -lr·(β²·∂L/∂θ + wd·θ), momentum included. We apply exactly that update directly: before every
    optimizer step one fused ``torch._foreach_mul_`` scales those parameters' gradients by β². The
    same training, with no gate in the forward pass and nothing to fold afterwards.
``none`` (default)
    plain fine-tuning of the pruned model. In the one measurement so far (efficientnet_lite0,
    caltech101, 112 px, one 10 % step, 4 epochs, seed 0; benchmarks/importance.py) it scored
    val 92.56 against 91.87 for ``preserve``, a gap within seed noise but not in preserve's favour.

After fine-tuning, :meth:`ImportanceFT.finish` folds forward gates into the weights (``literal``,
``normalized``) or removes the gradient hooks (``preserve``): the exported model has no gates.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from torch.optim.optimizer import register_optimizer_step_pre_hook

from .gates import Gates, GateSite, fold_gates

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


class ImportanceFT:
    """β attached for fine-tuning: forward gates or gradient scales; :meth:`finish` removes it."""

    def __init__(self, gates: Gates | None = None, handles: list | None = None) -> None:
        self.gates, self.handles = gates, handles or []

    @classmethod
    def gradient_scales(cls, params: list[torch.Tensor], scales: list[torch.Tensor]) -> "ImportanceFT":
        """Multiply each parameter's gradient by its scale before any optimizer step touches it."""

        def pre_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
            owned = {id(p) for g in optimizer.param_groups for p in g["params"]}
            pairs = [(p.grad, s) for p, s in zip(params, scales) if p.grad is not None and id(p) in owned]
            if pairs:
                grads, factors = zip(*pairs)
                torch._foreach_mul_(list(grads), list(factors))

        return cls(handles=[register_optimizer_step_pre_hook(pre_step)])

    def finish(self, model: nn.Module) -> None:
        """Fold the gates into the model and remove the hooks: the model is plain again."""
        if self.gates is not None:
            fold_gates(model, self.gates)
        self.remove_hooks()

    def remove_hooks(self) -> None:
        """Remove the process-wide optimizer hooks (also when fine-tuning failed); idempotent."""
        for h in self.handles:
            h.remove()
        self.handles.clear()


def attach_importance(model: nn.Module, sites: list[GateSite], beta: dict[str, torch.Tensor],
                      mode: str) -> ImportanceFT:
    """Attach the frozen β for fine-tuning in the given formulation."""
    if mode not in IMPORTANCE_FT_MODES:
        raise ValueError(f"importance_ft must be one of {IMPORTANCE_FT_MODES}")
    if mode == "none":
        return ImportanceFT()
    device = next(model.parameters()).device
    values = {k: v.to(device) for k, v in importance_values(beta, mode).items()}
    if mode == "preserve":
        params: list[torch.Tensor] = []
        scales: list[torch.Tensor] = []
        for site in sites:
            module: Any = model.get_submodule(site.module)
            scale = values[site.module].pow(2)
            for p in (module.weight, getattr(module, "bias", None)):
                if p is not None:
                    params.append(p)
                    scales.append(scale.view((-1,) + (1,) * (p.dim() - 1)).to(p.dtype))
        return ImportanceFT.gradient_scales(params, scales)
    return ImportanceFT(gates=Gates(sites, values).attach(model))
