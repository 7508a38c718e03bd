"""PyTorch's own distributed engine, as ``torchrun`` sets it up: process group, device, reductions.

``torchrun --nproc_per_node N -m bertcourse.pretrain ...`` starts N processes and gives each the
environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
Without them (a plain ``python -m bertcourse.pretrain``) the run is one process and no group is made.
The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from bertcourse.device import get_device, resolve_device

__all__ = ["Distributed", "setup"]


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: its ``rank`` among ``world_size`` and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes files; the others stay quiet."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """The sum of ``t`` over all processes (``t`` itself in a 1-process run)."""
        if self.enabled:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str | None = None) -> Distributed:
    """Join the process group that torchrun describes (if any) and pick this process's device.

    ``device``: ``None`` picks cuda (``cuda:LOCAL_RANK`` under torchrun), then mps, then cpu.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device) if device is not None else get_device()
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "mps":
            raise ValueError("--device mps cannot be used with torchrun: gloo and NCCL do not support it")
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=chosen if backend == "nccl" else None)
    return Distributed(rank, world_size, local_rank, chosen)
