"""Which images each training step sees, the same whether one process trains or several.

:class:`TrainSampler` shuffles with a permutation drawn from (seed, epoch) alone and deals it out
to the ranks the way :class:`~torch.utils.data.DistributedSampler` does, so with the global batch
``B`` split into ``B / N`` per rank, step ``k`` of an ``N``-process run covers exactly the images of
step ``k`` of a one-process run. Each index comes with a seed of its own, drawn from (seed, epoch,
index), from which the dataset draws that image's random crop and flip: augmentation does not
depend on which process or loader worker decodes the image either.

:class:`ShardSampler` splits an evaluation split over the ranks without padding, so summed counts
are exact.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler

from ..distributed import rank as this_rank
from ..distributed import world_size


class TrainSampler(DistributedSampler):
    """Shuffled indices, each with its own augmentation seed; every pass draws a new permutation."""

    def __init__(self, dataset, seed: int = 0, *, num_replicas: int | None = None, rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=world_size() if num_replicas is None else num_replicas,
                         rank=this_rank() if rank is None else rank, shuffle=True, seed=seed, drop_last=True)
        self.passes = 0

    def reseed(self, seed: int) -> None:
        """Start over from ``seed``: the next pass draws the same permutation as a fresh sampler's."""
        self.seed, self.passes = seed, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        self.set_epoch(self.passes)
        self.passes += 1
        for index in super().__iter__():
            yield index, sample_seed(self.seed, self.epoch, index)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 2_000_029 + index) % (2**63 - 1)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + N, rank + 2N, ...`` of the dataset, in order."""

    def __init__(self, dataset, *, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.n = len(dataset)
        self.rank = this_rank() if rank is None else rank
        self.world = world_size() if num_replicas is None else num_replicas

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def seeded(transform, image, key):
    """``transform(image)``, with the global RNG seeded from ``key``'s seed when the key carries one."""
    if not isinstance(key, tuple):
        return transform(image)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(key[1])  # the CPU generator alone: transforms draw from it
        return transform(image)


def reseed_loader(loader, seed: int) -> None:
    """Make ``loader``'s next pass shuffle as a fresh loader seeded with ``seed`` would."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, TrainSampler):
        sampler.reseed(seed)
    elif getattr(loader, "generator", None) is not None:
        loader.generator.manual_seed(seed)
