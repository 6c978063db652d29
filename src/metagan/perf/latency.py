"""Adaptation latency: K support images of a held-out class in, `num` generated images out, through the
public API (MetaGAN.adapt, then AdaptedGenerator.sample): the median and its split between the two.

    >>> record = next(adapt_latency(checkpoint="runs/00003-omniglot-fomaml", reps=20))
    >>> record["median_ms"], record["adapt_ms"], record["sample_ms"]

Without a checkpoint it uses the shipped model of the preset (`pretrained:<preset>`) if there is one, or else
first meta-trains the preset for `train_steps` steps into a temporary folder (what
the timing measures does not depend on how well the model is trained, only on its shapes).

`routes` times other ways to adapt (ROUTES: fewer steps, bfloat16 autocast, channels-last) beside the default path
in the same run, each with its speed-up over the default and how far its samples are from the default's.
"""
from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from ..adapt import AdaptedGenerator, MetaGAN, load
from ..checkpoint import PRETRAINED_PREFIX, pretrained_names
from ..config import apply_overrides, get_preset
from ..data import TaskSampler, build_datasets
from ..errors import ConfigError
from ..train import train
from .common import interleaved, median


def trained_model(preset: str, train_steps: int, data_dir: str | None, out_dir: str,
                  extra: Sequence[str] = ()) -> MetaGAN:
    """Meta-train `preset` (with the `extra` overrides) for `train_steps` steps into out_dir (no sample grids) and
    load the result."""
    overrides = [*extra, f"train.steps={train_steps}", "train.sample_every=0", "train.ckpt_every=0"]
    if data_dir:
        overrides.append(f"data.root={data_dir}")
    run = train(apply_overrides(get_preset(preset), overrides), out_dir=out_dir, name=preset, progress=False)
    return load(run)


def to_device(model: MetaGAN, device: torch.device) -> MetaGAN:
    move = lambda t: t.to(device)  # noqa: E731
    return MetaGAN(model.system, tree_map(move, model.meta), tree_map(move, model.ema), model.step)


def _default(model: MetaGAN, support: Tensor, steps: int, generator: torch.Generator) -> AdaptedGenerator:
    return model.adapt(support, steps, generator)


def _half_steps(model: MetaGAN, support: Tensor, steps: int, generator: torch.Generator) -> AdaptedGenerator:
    """Half the adaptation steps (rounded up), at the model's own rates."""
    return model.adapt(support, (steps + 1) // 2, generator)


def _half_steps_2x_rates(model: MetaGAN, support: Tensor, steps: int, generator: torch.Generator) -> AdaptedGenerator:
    """Half the adaptation steps (rounded up) with every inner learning rate scaled by steps / that, so the
    adaptation moves as far in total (Meta-SGD's learned rates, or MAML's fixed ones)."""
    half = (steps + 1) // 2
    scale = steps / half if half else 1.0
    learner = model.system.learner
    if "lr_g" in model.meta:  # learned rates are meta-parameters
        meta = {**model.meta, **{g: {k: v * scale for k, v in model.meta[g].items()} for g in ("lr_g", "lr_d")}}
        return dataclasses.replace(model, meta=meta).adapt(support, half, generator)
    fast = copy.copy(learner)
    fast.lr_g, fast.lr_d = learner.lr_g * scale, learner.lr_d * scale
    return dataclasses.replace(model, system=dataclasses.replace(model.system, learner=fast)).adapt(support, half,
                                                                                                   generator)


def _bf16(model: MetaGAN, support: Tensor, steps: int, generator: torch.Generator) -> AdaptedGenerator:
    """The adaptation under bfloat16 autocast (AMX / AVX-512 BF16 convolutions where the CPU has them)."""
    with torch.autocast(support.device.type, dtype=torch.bfloat16):
        return model.adapt(support, steps, generator)


def _channels_last(model: MetaGAN, support: Tensor, steps: int, generator: torch.Generator) -> AdaptedGenerator:
    """Support images in channels-last memory order, which the convolutions then keep."""
    return model.adapt(support.contiguous(memory_format=torch.channels_last), steps, generator)


def _compiled_copy(model: MetaGAN) -> MetaGAN:
    """One compiled copy per model timed (MetaGAN.compile); the default route keeps the eager path."""
    if id(model) not in _COMPILED:
        _COMPILED[id(model)] = (model, dataclasses.replace(model).compile())  # holding model keeps its id unique
    return _COMPILED[id(model)][1]


def _compiled(model: MetaGAN, support: Tensor, steps: int, generator: torch.Generator) -> AdaptedGenerator:
    """The inner step under torch.compile, compiled on the first call (first_call_s)."""
    return _compiled_copy(model).adapt(support, steps, generator)


def _compiled_half_steps_2x_rates(model: MetaGAN, support: Tensor, steps: int,
                                  generator: torch.Generator) -> AdaptedGenerator:
    """Both: the compiled step (the rates are inputs of the compiled code, so scaling them does not recompile)."""
    return _half_steps_2x_rates(_compiled_copy(model), support, steps, generator)


_COMPILED: dict[int, tuple[MetaGAN, MetaGAN]] = {}


# Ways to adapt that `metagan perf adapt --routes` can time beside the default path: measurements, not product
# options (docs/performance.md says which of them the product took up and why).
ROUTES: dict[str, Callable[[MetaGAN, Tensor, int, torch.Generator], AdaptedGenerator]] = {
    "default": _default, "half-steps": _half_steps, "half-steps-2x-rates": _half_steps_2x_rates, "bf16": _bf16,
    "channels-last": _channels_last,
    "compiled": _compiled, "compiled-half-steps-2x-rates": _compiled_half_steps_2x_rates}


def adapt_latency(preset: str = "omniglot-fomaml", checkpoint: str | None = None, data_dir: str | None = None,
                  train_steps: int = 300, k: int = 5, steps: int | None = None, num: int = 64, reps: int = 20,
                  device: torch.device = torch.device("cpu"), routes: Sequence[str] = ("default",),
                  overrides: Sequence[str] = ()) -> Iterator[dict]:
    """One record per route (ROUTES; the default path first): median milliseconds of adapt + sample, and of each
    part, over `reps` repetitions in which the routes take turns; beside the default, each other route's speed-up
    over it and the largest difference between its `num` samples and the default's (same seeds)."""
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise ConfigError(f"unknown adaptation route(s) {', '.join(unknown)}; routes are: {', '.join(ROUTES)}")
    routes = ["default", *[r for r in dict.fromkeys(routes) if r != "default"]]
    if checkpoint is None and preset in pretrained_names():
        checkpoint = PRETRAINED_PREFIX + preset
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metagan-perf-") as tmp:
        model = load(checkpoint) if checkpoint else trained_model(preset, train_steps, data_dir, tmp, overrides)
    train_s = time.perf_counter() - t0
    cfg = model.cfg
    steps = steps or model.own_steps
    if data_dir and cfg.data.source == "omniglot":
        cfg = apply_overrides(cfg, [f"data.root={data_dir}"])
    _, heldout = build_datasets(cfg.data)
    support, _ = TaskSampler(heldout, k, 0, 1).sample_class(0, torch.Generator().manual_seed(0), k)
    model = to_device(model, device)
    support = support.to(device)
    fns, samples, first_call_s = {}, {}, {}
    for r in routes:
        route = ROUTES[r]
        t0 = time.perf_counter()
        adapted = route(model, support, steps, torch.Generator().manual_seed(0))
        first_call_s[r] = time.perf_counter() - t0
        samples[r] = adapted.sample(num, torch.Generator().manual_seed(1)).float()
        fns[f"{r}/adapt"] = lambda route=route: route(model, support, steps, torch.Generator().manual_seed(0))
        fns[f"{r}/sample"] = lambda a=adapted: a.sample(num, torch.Generator().manual_seed(1))
    times = interleaved(fns, device, reps, warmup=2)
    base = None
    for r in routes:
        total = [a + s for a, s in zip(times[f"{r}/adapt"], times[f"{r}/sample"])]
        adapt_ms, sample_ms = 1e3 * median(times[f"{r}/adapt"]), 1e3 * median(times[f"{r}/sample"])
        base = base or median(total)
        yield {"bench": "adapt", "route": r, "preset": None if checkpoint else preset, "checkpoint": checkpoint,
               "learner": cfg.meta.learner, "train_steps": model.step, "k_shot": k, "inner_steps": steps, "num": num,
               "median_ms": round(1e3 * median(total), 2), "adapt_ms": round(adapt_ms, 2),
               "sample_ms": round(sample_ms, 2), "adapt_fraction": round(adapt_ms / (adapt_ms + sample_ms), 3),
               "min_ms": round(1e3 * min(total), 2), "speedup_vs_default": round(base / median(total), 3),
               "max_abs_diff_vs_default": float((samples[r] - samples["default"]).abs().max()),
               "first_call_s": round(first_call_s[r], 2), "reps": reps, "setup_s": round(train_s, 1),
               "device": str(device), "threads": torch.get_num_threads()}
