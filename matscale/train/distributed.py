"""Data-parallel training under `torchrun`: process group, sharding of global batches.

`torchrun --nproc_per_node K -m matscale train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; we
join a process group (gloo on CPU, nccl on GPU) and wrap the model in DDP. Every process
draws the same seeded permutation, cuts it into the same global batches of `batch_size`
structures, and keeps its contiguous share of each (`shard`; a process left without a share
of a small last batch runs a zero-weighted stand-in). The loss divides by the global
batch's counts and is multiplied by K, so DDP's gradient average equals the one-process
gradient; the schedule counts global steps. Only rank 0 writes files.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from matscale.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_env() -> DistInfo:
    """Rank information set by torchrun (defaults: a single process)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: str) -> tuple[DistInfo, str]:
    """Join the process group when launched by torchrun; returns (info, this process's device)."""
    info = from_env()
    if not info.enabled:
        return info, device
    kind = torch.device(device).type
    if kind == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise ConfigError(f"torchrun started {info.world_size} processes per node but only "
                              f"{torch.cuda.device_count()} GPU(s) are visible")
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", timeout=datetime.timedelta(minutes=30))
    return info, device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s value on every process (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def global_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's global batches: a permutation seeded by (seed, epoch) cut into batch_size chunks."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def shard(batch: np.ndarray, info: DistInfo) -> tuple[np.ndarray, bool]:
    """This process's contiguous share of a global batch, and whether it is a stand-in.

    When a global batch has fewer structures than processes, a process with no share gets
    the batch's first structure as a stand-in whose loss is multiplied by 0: it still joins
    DDP's gradient all-reduce but contributes nothing, so no structure is dropped and the
    result equals the one-process step.
    """
    part = np.array_split(batch, info.world_size)[info.rank]
    if len(part) == 0:
        return batch[:1], True
    return part, False


def unused_parameters(model: torch.nn.Module, batch, step_loss) -> list[str]:
    """Names of trainable parameters that get no gradient from a training step (probed on a copy)."""
    import copy

    clone = copy.deepcopy(model)
    clone.train()
    step_loss(clone, batch).backward()
    return [n for n, p in clone.named_parameters() if p.requires_grad and p.grad is None]


def wrap(model: torch.nn.Module, info: DistInfo, device: str, find_unused: bool = False) -> torch.nn.Module:
    """DDP around `model` (identity for one process); `find_unused` for models with parameters
    that a step does not use (DDP must then search the graph every step)."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if torch.device(device).type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                   find_unused_parameters=find_unused)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)
