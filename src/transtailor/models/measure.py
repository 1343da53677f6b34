"""Cost of a model: MACs, parameters and measured latency.

We count **MACs** (multiply-accumulates) of one image: half the FLOPs that
``torch.utils.flop_counter`` counts at the aten level (convolutions and matrix products; any module
type, timm's ``Conv2dSame`` included). A "FLOPs reduction" is the same ratio either way.
"""

from __future__ import annotations

import statistics
import time

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


@torch.no_grad()
def measure_latency(
    model: nn.Module, image_size: int, batch_size: int = 1, repeats: int = 10, warmup: int = 2
) -> float:
    """Median wall time in milliseconds of one forward pass of ``batch_size`` images."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    times = []
    try:
        for i in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        model.train(was_training)
    return statistics.median(times)
