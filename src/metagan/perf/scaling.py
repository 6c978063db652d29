"""Thread scaling: one meta-step of each preset at 1, 2, ... intra-op threads, the counts taking turns in one
process, wall and CPU time; what metagan.threads' size rule (PARALLEL_MIN_SAMPLE_FLOPS) is chosen from.

    >>> for record in thread_scaling(["digits-demo"], (1, 2), reps=5):
    ...     print(record["threads"], record["speedup_vs_1"], record["cpu_ratio_vs_1"])

CPU time (time.process_time, all threads of the process) is the figure that survives a shared machine: threads
that wait for a core another process holds spin, so their CPU time grows with the load, while wall time grows
with it for every count.
"""
from __future__ import annotations

import os
import time
from typing import Iterator, Sequence

import torch
from torch.utils._pytree import tree_map

from ..config import apply_overrides, get_preset
from ..meta import meta_gradients
from ..system import build_system, init_meta
from ..train import sample_flops, vectorize_mode
from .common import median, synthetic_tasks


def thread_scaling(presets: Sequence[str], threads: Sequence[int], reps: int, overrides: Sequence[str] = (),
                   device: torch.device = torch.device("cpu")) -> Iterator[dict]:
    """One record per (preset, thread count): median wall and CPU milliseconds of a meta-step (the meta-batch of
    the preset, tasks as meta.vectorize=auto runs them) and both as ratios to one thread."""
    before = torch.get_num_threads()
    try:
        for preset in presets:
            cfg = apply_overrides(get_preset(preset), list(overrides))
            system = build_system(cfg)
            meta = tree_map(lambda t: t.to(device), init_meta(system, cfg.train.seed))
            tasks = synthetic_tasks(system, cfg.task.meta_batch, device)
            mode = vectorize_mode(system)
            wall: dict[int, list[float]] = {n: [] for n in threads}
            cpu: dict[int, list[float]] = {n: [] for n in threads}
            for r in range(reps + 1):  # the first round warms up and is not kept
                order = list(threads)[r % len(threads):] + list(threads)[:r % len(threads)]
                for n in order:
                    torch.set_num_threads(n)
                    c0, t0 = time.process_time(), time.perf_counter()
                    meta_gradients(system.learner, meta, tasks, mode)
                    if r:
                        wall[n].append(time.perf_counter() - t0)
                        cpu[n].append(time.process_time() - c0)
            w1, c1 = median(wall[threads[0]]), median(cpu[threads[0]])
            for n in threads:
                yield {"bench": "threads", "preset": preset, "overrides": list(overrides),
                       "sample_mflops": round(sample_flops(cfg.model, system.shape) / 1e6, 2),
                       "meta_batch": cfg.task.meta_batch, "vectorize": mode, "threads": n,
                       "wall_ms": round(1e3 * median(wall[n]), 1), "cpu_ms": round(1e3 * median(cpu[n]), 1),
                       "speedup_vs_1": round(w1 / median(wall[n]), 3),
                       "cpu_ratio_vs_1": round(median(cpu[n]) / c1, 3), "reps": reps,
                       "load_avg_1min": round(_load(), 2), "device": str(device)}
    finally:
        torch.set_num_threads(before)


def _load() -> float:
    """The 1-minute load average (processes wanting a core), to say how shared the machine was; NaN if unknown."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")
