"""How many intra-op threads torch uses for a model, when nobody chose.

    >>> with model_threads(cfg):          # 1 thread for a small model, torch's default for a large one
    ...     train(cfg)

Who decides, first match wins: `train.threads` (`--set train.threads=N`), then the environment
(`OMP_NUM_THREADS`, which torch reads at start-up), then the model's size (`auto_threads`).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from threadpoolctl import threadpool_limits

from .config import Config

# Models below this many FLOPs per sample (one generator and one discriminator forward, train.sample_flops) run on
# one thread. `metagan perf threads` (docs/performance.md, "Threads"): the digits-demo model (1.4 MFLOP) took 2.3x
# longer on 2 threads than on 1 on an idle 2-core AMD EPYC (the demo: 7 min 34 s against 3 min 21 s), and its
# meta-step 32x longer, with 54x the CPU time, on a 2-core Intel Xeon shared with other jobs: an operator here is
# microseconds of work, so a second thread adds a fork and join to each of thousands per step and, while another
# process holds the other core, spins at every barrier. The Omniglot models (15 MFLOP) adapt 1.2x faster on 2
# threads on an idle machine. The crossover between the two sizes is not pinned down; this is in between.
PARALLEL_MIN_SAMPLE_FLOPS = 8e6
ENV = "OMP_NUM_THREADS"


def auto_threads(cfg: Config) -> int | None:
    """The thread count the model's size asks for: 1 below PARALLEL_MIN_SAMPLE_FLOPS, else None (torch's default:
    one per core). Only for CPU runs; a CUDA run's CPU threads only launch kernels."""
    if torch.device(cfg.train.device).type != "cpu":
        return None
    from .system import sample_shape
    from .train import sample_flops

    return 1 if sample_flops(cfg.model, sample_shape(cfg)) < PARALLEL_MIN_SAMPLE_FLOPS else None


def chosen_threads(cfg: Config) -> tuple[int | None, str]:
    """(threads to set or None to leave torch's, who chose): train.threads, else $OMP_NUM_THREADS, else the size."""
    if cfg.train.threads:
        return cfg.train.threads, "train.threads"
    if os.environ.get(ENV, "").strip():
        return None, ENV
    return auto_threads(cfg), "model size"


@contextlib.contextmanager
def model_threads(cfg: Config) -> Iterator[int]:
    """Run the block with chosen_threads(cfg) intra-op threads, then restore the caller's count (a library call
    leaves torch's global setting as it found it). Yields the count in use. NumPy's BLAS (scikit-learn's solvers,
    the demo's classifier) gets the same limit: its threads spin on a shared machine as torch's do (the demo's
    report took 44 s instead of 2 with two BLAS threads beside other work), and its sums depend on the count."""
    threads, _ = chosen_threads(cfg)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas") if threads else contextlib.nullcontext():
            yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
