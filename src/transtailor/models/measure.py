"""Cost of a model: MACs, parameters and measured latency.

We count **MACs** (multiply-accumulates) of one image with torch-pruning's counter, and call them
FLOPs only where the paper does ("FLOPs reduction" is the same ratio either way).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn


def count_macs_params(model: nn.Module, image_size: int) -> tuple[int, int]:
    """MACs of one ``image_size`` image and the parameter count."""
    import torch_pruning as tp

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        model.train(was_training)
    return int(macs), int(params)


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
