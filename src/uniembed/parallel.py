"""Processes started by torchrun: which rank this is, its device, which share of the work is its own, and the
few collectives `eval`, `encode`, `mine` and training need (one `World` for all of them).

One piece of code shards every multi-process command. Ranks exchange only small objects (a run id, a mask of
what is already done) over a gloo group: CPU tensors over TCP, so it works with or without GPUs, with NCCL as
the default group, and across machines. Embeddings travel through files in a folder every rank can read (the
embedding cache's folder or the output folder; with several machines, a shared filesystem). Waiting for other
ranks polls those files, so a slow rank never trips a collective's timeout. Without torchrun's variables
(`WORLD_SIZE` unset or 1) everything here is the one-process identity.
"""
from __future__ import annotations

import atexit
import datetime
import heapq
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one job (eval, encode, mine and training alike).

    The collectives (`barrier`, `broadcast`, `all_ranks`) run over the gloo group `join_world` set up: small
    picklable objects only; on one process each is the identity.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def device(self) -> "torch.device":
        """This rank's device: its own GPU (LOCAL_RANK; more ranks than GPUs share them), else the CPU."""
        import torch

        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{self.local_rank % torch.cuda.device_count()}")

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=_GROUP)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a small picklable object)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        holder = [value if self.is_main else None]
        dist.broadcast_object_list(holder, src=0, group=_GROUP)
        return holder[0]

    def all_ranks(self, value: Any) -> list[Any]:
        """`value` from every rank, in rank order (picklable values; a list of one on a single process)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, value, group=_GROUP)
        return gathered


SINGLE = World()
_GROUP: Any = None  # the gloo group the collectives use
_OWNS_GROUP = False  # join_world created the default process group, so leave_world destroys it


def world_from_environment() -> World:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, else one process."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def shard_from_environment(index: int | None, count: int | None) -> tuple[int, int]:
    """Explicit flags win; else torchrun's RANK / WORLD_SIZE; else one shard."""
    world = world_from_environment()
    return (index if index is not None else world.rank, count if count is not None else world.size)


def rank_device(device: str | None) -> str | None:
    """Under torchrun each process takes its own GPU (`World.device`); an explicit device wins; else None (the
    model's default)."""
    if device is not None or "LOCAL_RANK" not in os.environ:
        return device
    chosen = world_from_environment().device
    return str(chosen) if chosen.type == "cuda" else None


def join_world(timeout_minutes: float | None = 120, accelerator_group: bool = False) -> World:
    """The job's world; under torchrun (WORLD_SIZE > 1) also the gloo group the collectives of `World` use.

    `accelerator_group` (training): the default process group is NCCL when CUDA is available (DDP, FSDP and the
    loss gathers run on it) and this rank's GPU is made current. `timeout_minutes=None`: torch's default timeout.
    """
    global _GROUP, _OWNS_GROUP
    world = world_from_environment()
    cuda = accelerator_group and world.device.type == "cuda"
    if cuda:
        import torch

        torch.cuda.set_device(world.device)
    if world.distributed and _GROUP is None:
        if not world.is_main:  # one voice per job: the other ranks log warnings and errors only
            logging.getLogger("uniembed").setLevel(logging.WARNING)
        import torch.distributed as dist

        timeout = datetime.timedelta(minutes=timeout_minutes) if timeout_minutes is not None else None
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
            _OWNS_GROUP = True
            # a gloo group left to interpreter teardown can abort the process at exit ("terminate called
            # without an active exception"): the group this module created is destroyed before that
            atexit.register(leave_world)
        _GROUP = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    return world


def leave_world() -> None:
    """Destroy the process group `join_world` created (a no-op when it created none or it is gone already)."""
    global _GROUP, _OWNS_GROUP
    if _OWNS_GROUP:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _GROUP, _OWNS_GROUP = None, False


def balanced_owners(weights: Sequence[float], parts: int) -> list[int]:
    """The part (rank) each weighted unit goes to: heaviest first onto the lightest part, ties by index.

    Deterministic (every rank computes the same answer from the same weights); within ~max(weight) of even.
    """
    owners = [0] * len(weights)
    if parts <= 1:
        return owners
    loads = [(0.0, part) for part in range(parts)]
    for index in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        load, part = heapq.heappop(loads)
        owners[index] = part
        heapq.heappush(loads, (load + max(float(weights[index]), 1.0), part))
    return owners


def wait_for(paths: Sequence[Path], poll: Callable[[], None] | None = None, interval: float = 0.25) -> None:
    """Block until every path exists (files other ranks write when they finish), calling `poll` meanwhile."""
    pending = list(paths)
    while pending:
        pending = [path for path in pending if not path.exists()]
        if poll is not None:
            poll()
        if pending:
            time.sleep(interval)
