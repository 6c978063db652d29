"""Speed and memory benchmarks that print one JSON line per measurement (`metagan perf ...` runs them; the
quality benchmark, `metagan benchmark`, is metagan.benchmark).

    metagan perf throughput [--quick] [--device cuda]   # tasks/s of each meta-learner vs a per-task autograd loop
    metagan perf adapt [--checkpoint RUN] [--routes default half-steps ...]   # K=5 images -> 64 samples: median ms
    metagan perf memory [--quick]                       # peak memory of a meta-step vs meta-batch and inner steps
    metagan perf threads [--preset P ...]               # a meta-step at 1, 2, ... threads: wall and CPU time
    metagan perf fuzz --seconds 60                      # coverage-guided fuzzing of the image and checkpoint readers

Timings are medians of repetitions in which the variants take turns, so ratios come from one run under the
same load; tests never assert absolute times. Every benchmark runs on `--device cuda` too, synchronising
the device around each timed call.
"""
from __future__ import annotations

import os
from typing import Sequence

from .common import emit, resolve_device, set_threads

KINDS = ("throughput", "adapt", "memory", "threads", "fuzz")

# What --quick changes: fewer repetitions and a smaller sweep, a few minutes on 2 CPU cores in all.
DEFAULTS = {
    "throughput": {"full": {"meta_batches": (8, 32), "reps": 3}, "quick": {"meta_batches": (8,), "reps": 2}},
    "adapt": {"full": {"train_steps": 300, "reps": 30}, "quick": {"train_steps": 50, "reps": 10}},
    "memory": {"full": {"meta_batches": (1, 2, 4, 8, 16, 32), "inner_steps": (1, 2, 5, 10)},
               "quick": {"meta_batches": (1, 8, 32), "inner_steps": (1, 5)}},
    "threads": {"full": {"presets": ("digits-demo", "omniglot-fomaml"), "reps": 10},
                "quick": {"presets": ("digits-demo",), "reps": 3}},
    "fuzz": {"full": {"seconds": 300}, "quick": {"seconds": 30}},  # per target
}


def run_perf(kind: str, quick: bool = False, device: str = "cpu", threads: int | None = None,
             presets: Sequence[str] | None = None, meta_batches: Sequence[int] | None = None,
             reps: int | None = None, checkpoint: str | None = None, data_dir: str | None = None,
             train_steps: int | None = None, overrides: Sequence[str] = (), seconds: float | None = None,
             routes: Sequence[str] = ("default",), out=None) -> list[dict]:
    """Run one benchmark, print its JSON lines to `out` (stdout) as they come, and return the records."""
    from .fuzz import fuzz
    from .latency import adapt_latency
    from .memory import memory
    from .scaling import thread_scaling
    from .throughput import PRESETS, throughput

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "fuzz":  # no device or threads: the readers run on the CPU
        seconds = seconds or DEFAULTS["fuzz"]["quick" if quick else "full"]["seconds"]
        return [emit(r, out) for r in fuzz(seconds=seconds)]
    dev = resolve_device(device)
    set_threads(threads)
    opts = DEFAULTS[kind]["quick" if quick else "full"]
    if kind == "throughput":
        records = throughput(presets or PRESETS, meta_batches or opts["meta_batches"], dev,
                             reps or opts["reps"], overrides)
    elif kind == "adapt":
        records = adapt_latency((presets or ["omniglot-fomaml"])[0], checkpoint, data_dir,
                                train_steps or opts["train_steps"], reps=reps or opts["reps"], device=dev,
                                routes=routes, overrides=overrides)
    elif kind == "threads":  # 1 thread against each count up to --threads (default: every core)
        counts = tuple(range(1, (threads or os.cpu_count() or 1) + 1))
        records = thread_scaling(presets or opts["presets"], counts, reps or opts["reps"], overrides, dev)
    else:
        records = memory(presets or ("omniglot-fomaml", "omniglot-maml"), meta_batches or opts["meta_batches"],
                         opts["inner_steps"], device=dev, threads=threads)
    return [emit(r, out) for r in records]


__all__ = ["run_perf", "KINDS", "DEFAULTS"]
