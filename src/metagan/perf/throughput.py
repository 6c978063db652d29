"""Meta-training throughput: tasks per second of one meta-step (the meta-gradient of a meta-batch), for each
way of computing it, against the per-task autograd loop of baseline.py, measured in one run with the
variants taking turns; plus the FLOPs of the meta-step and the fraction of a large matmul's FLOP/s it
achieves.

    >>> for record in throughput(["omniglot-fomaml"], [8], torch.device("cpu"), reps=3):
    ...     print(record["variant"], record["ratio_vs_loop"])

Variants: `autograd-loop` (the baseline), `loop` (meta_gradients' per-task reference, torch.func) and
`vmap` (the tasks vectorised). `auto` marks the one `meta.vectorize=auto` picks for the config.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils._pytree import tree_map

from ..config import apply_overrides, get_preset
from ..meta import meta_gradients
from ..system import build_system, init_meta
from ..train import vectorize_mode
from .baseline import autograd_meta_gradients
from .common import count_flops, interleaved, matmul_flops_per_s, median, synthetic_tasks

PRESETS = ("omniglot-reptile", "omniglot-fomaml", "omniglot-maml", "omniglot-metasgd")


def max_rel_diff(grads, ref) -> float:
    """Largest |g - ref| over every meta-parameter, relative to the largest |ref| of its group."""
    worst = 0.0
    for group, params in ref.items():
        scale = max(float(v.abs().max()) for v in params.values()) or 1.0
        for k, v in params.items():
            worst = max(worst, float((grads[group][k] - v).abs().max()) / scale)
    return worst


def throughput(presets: Sequence[str], meta_batches: Sequence[int], device: torch.device, reps: int,
               overrides: Sequence[str] = (), peak_flops: float | None = None) -> Iterator[dict]:
    """A record of the matmul FLOP/s, then one per (preset, meta-batch, variant) (see the module docstring)."""
    peak = peak_flops or matmul_flops_per_s(device)
    yield {"bench": "matmul", "flops_per_s": round(peak), "device": str(device), "threads": torch.get_num_threads()}
    for preset in presets:
        for batch in meta_batches:
            cfg = apply_overrides(get_preset(preset), [f"task.meta_batch={batch}", f"train.device={device}",
                                                       *overrides])
            system = build_system(cfg)
            meta = tree_map(lambda t: t.to(device), init_meta(system, cfg.train.seed))
            tasks = synthetic_tasks(system, batch, device)
            learner = system.learner
            fns = {"autograd-loop": lambda: autograd_meta_gradients(learner, meta, tasks),
                   "loop": lambda: meta_gradients(learner, meta, tasks, "loop")[0],
                   "vmap": lambda: meta_gradients(learner, meta, tasks, "vmap")[0]}
            # One untimed call each, which also warms up: the FLOPs (counted on the ungrouped baseline:
            # every variant does the same arithmetic) and each variant's result against the baseline's.
            grads = {}
            flops = count_flops(lambda: grads.__setitem__("autograd-loop", fns["autograd-loop"]()))
            for v in fns:
                if v != "autograd-loop":
                    grads[v] = fns[v]()
            times = interleaved(fns, device, reps, warmup=0)
            base = median(times["autograd-loop"])
            auto = vectorize_mode(system)
            for v in fns:
                t = median(times[v])
                yield {"bench": "throughput", "preset": preset, "learner": learner.name,
                       "order": "second" if getattr(learner, "second_order", False) else "first", "meta_batch": batch,
                       "variant": v, "auto": v == auto, "tasks_per_s": round(batch / t, 3),
                       "median_ms": round(1e3 * t, 2), "ratio_vs_loop": round(base / t, 3),
                       "flops": flops, "flops_fraction": round(flops / t / peak, 4),
                       "max_rel_diff": max_rel_diff(grads[v], grads["autograd-loop"]),
                       "reps": reps, "device": str(device), "threads": torch.get_num_threads()}
