"""Cost of a model: MACs, parameters and measured latency.

We count **MACs** (multiply-accumulates) of one image: half the FLOPs that
``torch.utils.flop_counter`` counts at the aten level (convolutions and matrix products; any module
type, timm's ``Conv2dSame`` included). A "FLOPs reduction" is the same ratio either way.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def count_macs_params(model: nn.Module, image_size: int) -> tuple[int, int]:
    """MACs of one ``image_size`` image and the parameter count."""
    total, _ = layer_macs(model, image_size)
    return total, sum(p.numel() for p in model.parameters())


def layer_macs(model: nn.Module, image_size: int) -> tuple[int, dict[str, int]]:
    """Total MACs of one image, and the MACs of every module by qualified name (parents include children)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        model.train(was_training)
    root = type(model).__name__
    per_module = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global":
            continue
        key = "" if name == root else name.removeprefix(root + ".")
        per_module[key] = sum(ops.values()) // 2
    return int(counter.get_total_flops()) // 2, per_module


def probe_forward(model: nn.Module, image_size: int, handles: list) -> None:
    """One eval-mode, no-grad pass of a zero image through ``model`` to fire the given hooks.

    The hooks are removed and the model's train/eval mode restored, whatever happens.
    """
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def measure_latency(model: nn.Module, image_size: int, batch_size: int = 1, target: str = "cpu",
                    threads: int = 0) -> float:
    """Median milliseconds of one inference forward pass of ``batch_size`` images on ``target``.

    ``torch.utils.benchmark.Timer`` (or ONNX Runtime's session) via :mod:`.timing`; to compare
    models, use :func:`.timing.compare_latency`, which interleaves them.
    """
    from .timing import TimingSetup, make_runner, time_runner

    setup = TimingSetup(target, batch_size, threads)
    fn = make_runner(model, (batch_size, 3, image_size, image_size), setup)
    fn()
    return 1000.0 * time_runner(fn, setup)
