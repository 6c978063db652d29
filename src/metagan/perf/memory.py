"""Peak memory of one meta-step against meta-batch size and inner steps, first and second order, per way of
running the tasks (the per-task loop keeps one task's graph alive at a time, vmap all of them).

Every measurement runs in a fresh subprocess (`python -m metagan.perf.memory '<json spec>'`) so that one
measurement's peak cannot hide another's. On the CPU the peak is the process's maximum resident set size
(`resource.getrusage`; tracemalloc does not see torch's allocations); on CUDA it is
`torch.cuda.max_memory_allocated`. `step_mb` is the peak minus what was resident before the step.

    >>> for record in memory(["omniglot-maml"], meta_batches=[1, 8], inner_steps=[5], variants=["loop"]):
    ...     print(record["meta_batch"], record["peak_mb"])
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Iterator, Sequence

import torch
from torch.utils._pytree import tree_map

from ..errors import MetaganError


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(spec: dict) -> dict:
    """One meta-step of spec {"preset", "meta_batch", "inner_steps", "variant", "device", "threads"}, in this
    process: the record of its peak memory."""
    from ..config import apply_overrides, get_preset
    from ..meta import meta_gradients
    from ..system import build_system, init_meta
    from .common import set_threads, synthetic_tasks

    set_threads(spec.get("threads"))
    device = torch.device(spec["device"])
    cfg = apply_overrides(get_preset(spec["preset"]), [f"task.meta_batch={spec['meta_batch']}",
                                                       f"meta.inner_steps={spec['inner_steps']}"])
    system = build_system(cfg)
    meta = tree_map(lambda t: t.to(device), init_meta(system, 0))
    tasks = synthetic_tasks(system, spec["meta_batch"], device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = _rss_mb()
    meta_gradients(system.learner, meta, tasks, spec["variant"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _maxrss_mb()
    return {"bench": "memory", "preset": spec["preset"], "learner": system.learner.name,
            "meta_batch": spec["meta_batch"], "inner_steps": spec["inner_steps"], "variant": spec["variant"],
            "peak_mb": round(peak, 1), "step_mb": round(max(0.0, peak - base), 1),
            "measure": "cuda.max_memory_allocated" if device.type == "cuda" else "ru_maxrss",
            "device": str(device), "threads": torch.get_num_threads()}


def measure_in_subprocess(spec: dict, timeout: float = 1800) -> dict:
    """measure(spec) in a fresh Python process that imports this very copy of metagan."""
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-m", "metagan.perf.memory", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise MetaganError(f"memory measurement {spec} failed (exit {proc.returncode}; a negative code is a "
                           f"signal, e.g. the out-of-memory killer):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def memory(presets: Sequence[str], meta_batches: Sequence[int], inner_steps: Sequence[int],
           variants: Sequence[str] = ("loop", "vmap"), device: torch.device = torch.device("cpu"),
           threads: int | None = None, batch_for_steps: int = 8) -> Iterator[dict]:
    """Per preset and variant: a meta-batch sweep at the preset's inner steps, an inner-step sweep at
    meta-batch `batch_for_steps`, then a `memory-growth` record with the fitted MB per task and per step."""
    from ..config import get_preset

    for preset in presets:
        cfg = get_preset(preset)
        t0 = cfg.meta.inner_steps
        smallest = 2 if cfg.loss.mismatch > 0 else 1  # the matching-aware term takes another task's class
        for b in (b for b in meta_batches if b < smallest):
            yield {"bench": "memory-skipped", "preset": preset, "meta_batch": b,
                   "why": "loss.mismatch > 0 needs at least 2 tasks per meta-batch"}
        for variant in variants:
            spec = {"preset": preset, "variant": variant, "device": str(device), "threads": threads}
            by_batch, by_steps = [], []
            for b in (b for b in meta_batches if b >= smallest):
                rec = measure_in_subprocess({**spec, "meta_batch": b, "inner_steps": t0})
                by_batch.append(rec)
                yield rec
            for t in inner_steps:
                rec = measure_in_subprocess({**spec, "meta_batch": batch_for_steps, "inner_steps": t})
                by_steps.append(rec)
                yield rec
            growth = {"bench": "memory-growth", "preset": preset, "learner": by_batch[0]["learner"],
                      "variant": variant, "device": str(device)}
            if len(by_batch) > 1:
                growth["mb_per_task"] = round(slope([r["meta_batch"] for r in by_batch],
                                                    [r["step_mb"] for r in by_batch]), 2)
            if len(by_steps) > 1:
                growth["mb_per_inner_step"] = round(slope([r["inner_steps"] for r in by_steps],
                                                          [r["step_mb"] for r in by_steps]), 2)
            yield growth


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))), flush=True)
