"""Data parallel training: one process per device, started by `accelerate launch` or torchrun.

Both launchers set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with WORLD_SIZE > 1
this module joins the process group (NCCL/RCCL on GPUs, gloo on CPU). Every process draws the
same global batch and the same random numbers from the run's seed and trains on its own slice;
gradients are averaged once per optimizer step, so N processes at --batch-size B take the same
steps as one process at N*B. Only the main process writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one process: index 0 of 1)."""

    index: int = 0
    count: int = 1
    local_index: int = 0

    @property
    def main(self) -> bool:
        return self.index == 0

    def shard(self, batch_size: int) -> slice:
        """This process's slice of a global batch of `batch_size * count` samples."""
        return slice(self.index * batch_size, (self.index + 1) * batch_size)

    def average(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over all processes (one collective call)."""
        if self.count == 1 or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.count
        offset = 0
        for tensor in tensors:
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()

    def barrier(self) -> None:
        if self.count > 1:
            dist.barrier()


def join_processes(gpu: bool) -> Processes:
    """The process group the launcher described, joined; a single process when there is none."""
    count = int(os.environ.get("WORLD_SIZE", "1"))
    if count <= 1:
        return Processes()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if gpu else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def leave_processes() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
