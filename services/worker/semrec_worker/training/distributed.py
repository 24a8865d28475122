"""Data-parallel training with `torchrun` (torch.distributed, DDP): gloo on CPU, nccl on CUDA.

`torchrun --nproc-per-node 2 -m semrec_worker.training.launch --config RUN.json` (or any script that calls
`train_seqrec`) sets RANK / WORLD_SIZE / LOCAL_RANK; `setup()` reads them. A plain process runs alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from semrec_worker.core.runtime import resolve_device


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(requested_device: str = "auto") -> Context:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device)
    if world_size > 1:
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world_size, local_rank, device)


def all_sum(value: torch.Tensor, ctx: Context) -> torch.Tensor:
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value)
    return value


def broadcast_float(value: float, ctx: Context) -> float:
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
