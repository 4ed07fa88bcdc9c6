"""DistributedDataParallel plumbing: process group from torchrun's environment variables.

``torchrun --nproc_per_node N -m raoutcome.cli train ...`` (or any launcher that sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) makes every
process train on its share of the patients; gradients are averaged, so every rank ends
with the same weights. NCCL with CUDA, gloo otherwise. Rank 0 alone writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True if we created the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group described by the environment (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_true(info: DistInfo, flag: bool) -> bool:
    """True on every rank iff ``flag`` is True on every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def shutdown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(pref: str, info_local_rank: int | None = None) -> torch.device:
    """``auto``: CUDA (this process's LOCAL_RANK device) if available, else CPU."""
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        from raoutcome.errors import ConfigError

        raise ConfigError("train.device = 'cuda' but no CUDA device is available")
    local = int(os.environ.get("LOCAL_RANK", 0)) if info_local_rank is None else info_local_rank
    return torch.device("cuda", local)
