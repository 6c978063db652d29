"""What every benchmark shares: devices and synchronised timing, synthetic meta-batches, FLOP counting,
the machine's matmul FLOP/s, and one JSON line per measurement."""
from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Callable, Iterable

import torch
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError
from ..meta import sample_noise
from ..meta.problem import other_classes
from ..system import System
from ..train import available_device


def resolve_device(name: str) -> torch.device:
    dev = available_device(name, "--device ")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: the benchmarks run on cpu or cuda")
    return dev


def set_threads(threads: int | None) -> int:
    """Intra-op threads for this process (None: leave torch's default); returns the number in use."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of fn takes, with the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, reps: int,
                warmup: int = 1) -> dict[str, list[float]]:
    """Times of `reps` calls of each fn, the variants taking turns (in a rotating order) so that load from
    other processes on a shared machine falls on all of them alike; `warmup` untimed calls first."""
    for _ in range(warmup):
        for fn in fns.values():
            timed(fn, device)
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(reps):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(timed(fns[k], device))
    return times


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def synthetic_tasks(system: System, meta_batch: int, device: torch.device, dtype=torch.float32,
                    seed: int = 0) -> dict:
    """A meta-batch of the config's task shapes with images uniform in [-1, 1]: what a meta-step costs does
    not depend on the pixels, and no data set has to be present."""
    cfg = system.cfg
    g = torch.Generator().manual_seed(seed)
    k, q = cfg.task.k_shot, cfg.task.q_query
    tasks = {"support": torch.rand(meta_batch, k, *system.shape, generator=g, dtype=dtype) * 2 - 1,
             "query": torch.rand(meta_batch, q, *system.shape, generator=g, dtype=dtype) * 2 - 1,
             "noise": sample_noise(meta_batch, system.learner.sched, k, q, system.problem.z_dim, g, dtype)}
    if cfg.loss.mismatch > 0:
        tasks["noise"]["other"] = other_classes(tasks["support"])
    return tree_map(lambda t: t.to(device), tasks)


class _NoModuleTracking:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break a torch.autograd.grad taken
    inside the counted code (the WGAN-GP and R1 penalties of the autograd baseline). Totals only."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of fn as torch.utils.flop_counter counts them (matmuls and convolutions, forward
    and backward; elementwise work is not counted). Count ungrouped code: the counter's formula for the
    weight gradient of a grouped convolution (what vmap makes of per-task weights) ignores the groups."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_flops_per_s(device: torch.device, n: int | None = None, reps: int = 5) -> float:
    """FLOP/s of a large float32 matmul (n x n, 2 n^3 FLOPs): the machine's practical peak."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = interleaved({"mm": lambda: a @ b}, device, reps)["mm"]
    return 2 * n ** 3 / median(times)


def emit(record: dict, out=None) -> dict:
    """Print one measurement as one JSON line (and flush: long runs show progress)."""
    out = out or sys.stdout
    print(json.dumps(record), file=out, flush=True)
    return record
