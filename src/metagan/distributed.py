"""Meta-training across processes and machines with torch.distributed (gloo on CPU, NCCL on GPUs).

    torchrun --nproc-per-node=2 -m metagan train --preset omniglot-fomaml
    torchrun --nnodes=2 --node-rank=0 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \
        --nproc-per-node=4 -m metagan train --preset omniglot-fomaml

Every rank draws the whole meta-batch from the same seeded generator (so the random state, and with it
a checkpoint, does not depend on the number of ranks) and keeps its own contiguous share of the tasks:
no two ranks ever adapt to the same task, and a W-rank run computes exactly the meta-gradient of a
1-rank run over the same B tasks. Each rank averages over its B/W tasks; an all-reduce averages over
ranks; every rank then takes the same optimizer step. Only rank 0 writes logs, grids and checkpoints.
A checkpoint holds nothing rank-specific, so it resumes under any number of ranks, including 1.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils._pytree import tree_flatten, tree_unflatten

from .errors import ConfigError, MetaganError


class RankFailure(MetaganError):
    """Another rank stopped answering: this one stops too, leaving the last checkpoint intact."""

    exit_code = 4


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(timeout_s: float = 120.0, device: str = "cpu") -> Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, MASTER_ADDR...).

    Without those variables (a plain `metagan train`) this is a single process. `timeout_s` bounds how
    long a collective waits for a rank that died before this one reports the failure."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Dist(dist.get_rank(), dist.get_world_size())


def per_rank(meta_batch: int, d: Dist) -> int:
    """Tasks per rank; the meta-batch must split evenly so that every rank's mean weighs the same."""
    if meta_batch % d.world:
        raise ConfigError(f"task.meta_batch={meta_batch} must be divisible by the number of processes "
                          f"({d.world}): each rank takes an equal share of every meta-batch")
    return meta_batch // d.world


def shard(tasks: dict, d: Dist, meta_batch: int) -> dict:
    """This rank's contiguous share of a meta-batch (every leaf has the task dimension first)."""
    if not d.enabled:
        return tasks
    per = per_rank(meta_batch, d)
    leaves, spec = tree_flatten(tasks)
    return tree_unflatten([t[d.rank * per:(d.rank + 1) * per] for t in leaves], spec)


def all_reduce_mean(tree, d: Dist):
    """The mean of a pytree of tensors over ranks, in one flat all-reduce."""
    if not d.enabled:
        return tree
    leaves, spec = tree_flatten(tree)
    flat = torch.cat([t.reshape(-1) for t in leaves])
    _collective(dist.all_reduce, flat, op=dist.ReduceOp.SUM)
    flat /= d.world
    out, i = [], 0
    for t in leaves:
        out.append(flat[i:i + t.numel()].view_as(t))
        i += t.numel()
    return tree_unflatten(out, spec)


def check_in_sync(params: list[torch.Tensor], d: Dist) -> None:
    """Raise if the ranks' parameters have drifted apart (compared through a float64 checksum)."""
    if not d.enabled:
        return
    local = torch.stack([torch.cat([p.detach().reshape(-1) for p in params]).double().sum()] * 2)
    local[1] = -local[1]
    _collective(dist.all_reduce, local, op=dist.ReduceOp.MAX)  # max of x and of -x: equal iff all agree
    if float(local[0] + local[1]) != 0.0:
        raise RuntimeError("ranks hold different parameters: a bug in the distributed step")


def barrier(d: Dist) -> None:
    if d.enabled:
        _collective(dist.barrier)


def close(d: Dist) -> None:
    """Leave together: a rank that tears its group down while another is still in a collective (rank 0
    writing its final checkpoint) can make gloo abort the process."""
    if d.enabled and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def _collective(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (RuntimeError, dist.DistBackendError) as e:
        raise RankFailure(
            f"rank {dist.get_rank()} lost contact with another rank ({type(e).__name__}: {str(e)[:200]}). "
            "The last checkpoint is intact: resume with `metagan train --resume RUN` under any number of "
            "processes.") from None
