"""torch.distributed set-up shared by the batch segmenter and the trainers.

Under ``torchrun`` the environment carries RANK/WORLD_SIZE/LOCAL_RANK: each process takes one
device (its local GPU, or the CPU with the gloo backend). Without it everything runs as a single
process and no process group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

from vos.infra.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; pick this process's device.

    ``device`` is ``auto`` (the local GPU if there is one, else the CPU), ``cpu`` or ``cuda``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA GPU here; use --device cpu (or auto)")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This process's share of ``items``: every world_size-th item starting at its rank."""
    return list(items[ctx.rank :: ctx.world_size])


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over all processes (returns it unchanged in a single process)."""
    if ctx.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_objects(obj: T, ctx: DistContext) -> list[T]:
    """``obj`` of every process, in rank order (collective: all processes call it); ``[obj]`` in a
    single process. For small picklable objects such as RNG states."""
    if not ctx.enabled:
        return [obj]
    objects: list = [None] * ctx.world_size
    dist.all_gather_object(objects, obj)
    return objects


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Give every process rank 0's buffers (e.g. BatchNorm running statistics, which DDP keeps per
    process after the last forward) so that all processes hold the same model."""
    if ctx.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
