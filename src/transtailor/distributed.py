"""Several processes, one run: PyTorch's own distributed engine, started by ``torchrun``.

``torchrun --nproc_per_node N -m transtailor search ...`` starts N copies of the command; each
reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from its environment and :func:`init_from_env` joins
them into one process group (NCCL on GPUs, gloo on CPUs). From there:

- ``--batch-size`` is the *global* batch; each rank trains on its ``1/N`` share of every batch
  (:mod:`transtailor.data.sampling`), so a run's batches hold the same images whatever N is;
- weight training runs under :class:`~torch.nn.parallel.DistributedDataParallel`; the scaling
  factors α, which live outside the model, have their gradients averaged with
  :func:`average_gradients`, so β and every Taylor score come from global-batch gradients and are
  identical on every rank (and are broadcast from rank 0 before pruning all the same);
- every rank prunes the same filters of its own copy, and DDP is rebuilt around the smaller model
  at the next training phase;
- evaluation is sharded over the ranks and the counts summed;
- only rank 0 writes the run folder, logs at INFO and draws progress bars.

Without torchrun every function here is a no-op for a single process.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import ConfigError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True in the process that writes files and logs: rank 0, or the only process."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun set up (once); return this rank's device.

    ``device`` is what ``--device`` resolved to: on CUDA each rank takes ``cuda:LOCAL_RANK``.
    """
    if not launched_by_torchrun() or is_distributed():
        return _local_device(device)
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run without torchrun")
    device = _local_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    if not is_main():
        logging.getLogger("transtailor").setLevel(logging.WARNING)
    return device


def _local_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and launched_by_torchrun():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} GPU(s); "
                              "use --nproc_per_node <= the number of GPUs")
        return torch.device("cuda", local)
    return device


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place; returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (every rank gets the same answer)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(t).item() > 0)


def average_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Replace each tensor by its mean over the ranks, in place, in one all-reduce; returns them."""
    if is_distributed() and tensors:
        flat = torch._utils._flatten_dense_tensors(tensors)
        all_reduce_sum(flat).div_(world_size())
        for t, synced in zip(tensors, torch._utils._unflatten_dense_tensors(flat, tensors)):
            t.copy_(synced)
    return tensors


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the ranks (what DDP does for modules)."""
    average_([p.grad for p in params if p.grad is not None])


def broadcast_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Make every rank hold rank 0's values (in place); returns the dict."""
    if is_distributed():
        for key in sorted(tensors):
            t = tensors[key]
            if t.device.type == "cpu" and dist.get_backend() == "nccl":
                moved = t.cuda()
                dist.broadcast(moved, 0)
                t.copy_(moved.cpu())
            else:
                dist.broadcast(t, 0)
    return tensors


def sync_model(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (BatchNorm statistics included) to every rank."""
    if is_distributed():
        with torch.no_grad():
            broadcast_tensors(dict(model.state_dict()))


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` under DistributedDataParallel when several processes train; else ``model`` itself."""
    if not is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=True)
