"""Adaptation latency: K support images of a held-out class in, `num` generated images out, through the
public API (MetaGAN.adapt, then AdaptedGenerator.sample): the median and its split between the two.

    >>> record = next(adapt_latency(checkpoint="runs/00003-omniglot-fomaml", reps=20))
    >>> record["median_ms"], record["adapt_ms"], record["sample_ms"]

Without a checkpoint it uses the shipped model of the preset (`pretrained:<preset>`) if there is one, or else
first meta-trains the preset for `train_steps` steps into a temporary folder (what
the timing measures does not depend on how well the model is trained, only on its shapes).
"""
from __future__ import annotations

import tempfile
import time
from typing import Iterator

import torch
from torch.utils._pytree import tree_map

from ..adapt import MetaGAN, load
from ..checkpoint import PRETRAINED_PREFIX, pretrained_names
from ..config import apply_overrides, get_preset
from ..data import TaskSampler, build_datasets
from ..train import train
from .common import interleaved, median


def trained_model(preset: str, train_steps: int, data_dir: str | None, out_dir: str) -> MetaGAN:
    """Meta-train `preset` for `train_steps` steps into out_dir (no sample grids) and load the result."""
    overrides = [f"train.steps={train_steps}", "train.sample_every=0", "train.ckpt_every=0"]
    if data_dir:
        overrides.append(f"data.root={data_dir}")
    run = train(apply_overrides(get_preset(preset), overrides), out_dir=out_dir, name=preset, progress=False)
    return load(run)


def to_device(model: MetaGAN, device: torch.device) -> MetaGAN:
    move = lambda t: t.to(device)  # noqa: E731
    return MetaGAN(model.system, tree_map(move, model.meta), tree_map(move, model.ema), model.step)


def adapt_latency(preset: str = "omniglot-fomaml", checkpoint: str | None = None, data_dir: str | None = None,
                  train_steps: int = 300, k: int = 5, steps: int = 10, num: int = 64, reps: int = 20,
                  device: torch.device = torch.device("cpu")) -> Iterator[dict]:
    """One record: median milliseconds of adapt + sample, and of each part, over `reps` repetitions."""
    if checkpoint is None and preset in pretrained_names():
        checkpoint = PRETRAINED_PREFIX + preset
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metagan-perf-") as tmp:
        model = load(checkpoint) if checkpoint else trained_model(preset, train_steps, data_dir, tmp)
    train_s = time.perf_counter() - t0
    cfg = model.cfg
    if data_dir and cfg.data.source == "omniglot":
        cfg = apply_overrides(cfg, [f"data.root={data_dir}"])
    _, heldout = build_datasets(cfg.data)
    support, _ = TaskSampler(heldout, k, 0, 1).sample_class(0, torch.Generator().manual_seed(0), k)
    model = to_device(model, device)
    support = support.to(device)
    adapted = model.adapt(support, steps, torch.Generator().manual_seed(0))
    fns = {"adapt": lambda: model.adapt(support, steps, torch.Generator().manual_seed(0)),
           "sample": lambda: adapted.sample(num, torch.Generator().manual_seed(1))}
    times = interleaved(fns, device, reps, warmup=2)
    total = [a + s for a, s in zip(times["adapt"], times["sample"])]
    adapt_ms, sample_ms = 1e3 * median(times["adapt"]), 1e3 * median(times["sample"])
    yield {"bench": "adapt", "preset": None if checkpoint else preset, "checkpoint": checkpoint,
           "learner": cfg.meta.learner, "train_steps": model.step, "k_shot": k, "inner_steps": steps, "num": num,
           "median_ms": round(1e3 * median(total), 2), "adapt_ms": round(adapt_ms, 2),
           "sample_ms": round(sample_ms, 2), "adapt_fraction": round(adapt_ms / (adapt_ms + sample_ms), 3),
           "min_ms": round(1e3 * min(total), 2), "reps": reps, "setup_s": round(train_s, 1),
           "device": str(device), "threads": torch.get_num_threads()}
