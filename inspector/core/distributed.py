"""Data-parallel training with ``torch.distributed`` (DDP), for ``torchrun``.

    torchrun --standalone --nproc-per-node 2 -m inspector.cli train --data synthetic --out run

``process_group_from_env`` joins the group that torchrun describes in the environment
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...; gloo on the CPU, nccl on CUDA) and is a no-op
for a plain single process. ``Replicas`` is what the training loop sees: each global batch of
``batch_size`` images is split into one contiguous shard per rank, DDP all-reduces the
gradients, and the loss is rescaled so that the update equals one process's on the whole
batch (``mean over the global batch``, also for uneven shards). Every rank keeps the same
replica (same seed, same initialisation, same batches), so every rank can validate; only rank
0 writes checkpoints, and ``last.pt`` of any rank resumes all of them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


def _env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def process_group_from_env(device: str = "auto") -> Iterator[World]:
    """Join torchrun's process group for the block (and leave it after); ``World()`` alone
    when not started by torchrun or when a group is already set up by the caller."""
    if _env_world_size() <= 1 or dist.is_initialized():
        yield current_world()
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        # "cuda" then means this rank's own GPU for everything the trainer allocates.
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield current_world()
    finally:
        dist.destroy_process_group()


def current_world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


class Replicas:
    """The model as the training step uses it: itself in one process, DDP in a group."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.world = current_world()
        self.model: nn.Module = model
        if self.world.world_size > 1:
            ids = [device.index or torch.cuda.current_device()] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def check_batches(self, num_images: int, batch_size: int) -> str | None:
        """A reason why this data cannot be split over the ranks, or None."""
        n = self.world.world_size
        last = num_images % batch_size or batch_size
        if n > 1 and min(batch_size, last, num_images) < n:
            return (
                f"every batch needs at least one image per process: batch size {batch_size} "
                f"(last batch {last}) over {n} processes"
            )
        return None

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global batch of indices."""
        if self.world.world_size == 1:
            return idx
        return idx.tensor_split(self.world.world_size)[self.world.rank]

    def loss_to_backward(self, loss: torch.Tensor, local: int, total: int) -> torch.Tensor:
        """The local mean loss, scaled so that DDP's gradient average equals the gradient of
        the mean over the whole global batch."""
        if self.world.world_size == 1:
            return loss
        return loss * (local * self.world.world_size / total)

    def global_loss(self, loss: torch.Tensor, local: int, total: int) -> torch.Tensor:
        """The mean loss over the global batch, identical on every rank (detached)."""
        if self.world.world_size == 1:
            return loss
        summed = loss.detach() * (local / total)
        dist.all_reduce(summed)
        return summed

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """A count summed over the ranks (e.g. correct predictions of the epoch)."""
        if self.world.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)
        return value
