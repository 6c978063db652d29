"""Adaptation: K examples of a new class in, an adapted generator out.

    >>> model = load("runs/00000-digits-demo")              # or a checkpoint file
    >>> adapted = model.adapt(support, steps=10, generator=torch.Generator().manual_seed(0))
    >>> images = adapted.sample(64, torch.Generator().manual_seed(1))   # (64, C, H, W) in [-1, 1]

`support` is (K, C, H, W) in model space ([-1, 1], ink bright); `read_support` reads image files the
way the training data were read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from . import checkpoint as ckpt
from .config import Config
from .data import files_inverted, read_image, to_model_space
from .errors import ConfigError, DataError
from .functional import Meta, Params, detach
from .meta import InnerSchedule, sample_noise
from .system import System, build_system, init_meta


def check_select(select: float, name: str = "select") -> None:
    """The selection ratio of AdaptedGenerator.sample (and of the commands that pass it on) is >= 1."""
    if not select >= 1.0:
        raise ConfigError(f"{name} is the ratio of drawn candidates to kept samples: use a value >= 1 "
                          f"(1 = no selection), got {select}")


@dataclass
class AdaptedGenerator:
    system: System
    params_g: Params
    params_d: Params
    support: Tensor  # (K, C, H, W): the context of conditional models

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, select: float = 1.0) -> Tensor:
        """n samples of the adapted class: (n, C, H, W) in [-1, 1].

        select > 1: draw round(select x n) candidates and keep the n that the adapted discriminator rates most
        real (each beside its reference, as D judges), in the order they were drawn; 1 = every draw is kept."""
        check_select(select)
        ref = next(iter(self.params_g.values()))
        prob, support = self.system.problem, self.support.to(ref.device, ref.dtype)
        m = max(n, round(select * n))
        z = torch.randn(m, prob.z_dim, generator=generator, dtype=ref.dtype).to(ref.device)
        x = prob.generate(self.params_g, z, support)
        if m == n:
            return x
        score = prob.discriminate(self.params_d, x, prob.refs(support, m))
        return x[score.topk(n).indices.sort().values]


def adapt_params(system: System, meta: Meta, support: Tensor, steps: int, generator: torch.Generator,
                 use_ema: Params | None = None) -> tuple[Params, Params]:
    """Run the meta-learner's inner loop on `support` (K, ...) for `steps` steps (no outer graph)."""
    if support.ndim != len(system.shape) + 1 or tuple(support.shape[1:]) != system.shape:
        raise DataError(f"support images have shape {tuple(support.shape[1:])}, the model expects "
                        f"{system.shape}; read them with read_support() or resize them")
    if support.shape[0] < 1:
        raise DataError("adaptation needs at least one support example (K >= 1)")
    m = system.cfg.meta
    sched = InnerSchedule(steps, m.n_d, m.n_g)
    ref = next(iter(meta["g"].values()))
    dtype, device = ref.dtype, ref.device
    k = support.shape[0]
    noise = sample_noise(1, sched, k, 0, system.problem.z_dim, generator, dtype)  # drawn on the CPU generator
    noise = {key: v[0].to(device) for key, v in noise.items()}
    lr_g, lr_d = system.learner.rates(meta)
    pg0 = use_ema if use_ema is not None else meta["g"]
    pg, pd, _ = system.problem.inner_loop(detach(pg0), detach(meta["d"]), detach(lr_g), detach(lr_d),
                                          support.to(device, dtype), noise, sched, first_order=True)
    return detach(pg), detach(pd)


@dataclass
class MetaGAN:
    """A meta-trained GAN: config, assembled parts, meta-parameters and the EMA generator."""

    system: System
    meta: Meta
    ema: dict
    step: int = 0

    @property
    def cfg(self) -> Config:
        return self.system.cfg

    def adapt(self, support: Tensor, steps: int | None = None, generator: torch.Generator | None = None,
              use_ema: bool = True, keep_generator: bool = False) -> AdaptedGenerator:
        """Run the inner loop on `support` for `steps` steps. keep_generator: adapt as usual, then sample from the
        generator the adaptation started from, with the adapted discriminator (for `sample(select=R)`: the
        fine-tuned discriminator chooses among the pre-trained generator's samples)."""
        if steps is None:  # 0 is honoured: the meta-learned (EMA) generator itself, no adaptation
            steps = self.cfg.train.adapt_steps or self.cfg.meta.inner_steps
        if steps < 0:
            raise ConfigError(f"adaptation steps must be >= 0, got {steps}")
        generator = generator or torch.Generator().manual_seed(0)
        ema_g = self.ema.get("g") if use_ema and self.ema else None
        pg, pd = adapt_params(self.system, self.meta, support, steps, generator, ema_g)
        if keep_generator:
            pg = detach(ema_g if ema_g is not None else self.meta["g"])
        return AdaptedGenerator(self.system, pg, pd, support)

    def read_support(self, paths: list[str | os.PathLike]) -> Tensor:
        """Image files -> (K, C, H, W) model-space tensor, read as the training data were."""
        d = self.cfg.data
        imgs = [read_image(p, d.image_size, d.channels, files_inverted(d)) for p in paths]
        return to_model_space(torch.stack(imgs))


def load(path: str | os.PathLike) -> MetaGAN:
    """Load a run folder or checkpoint file (tensors and JSON only; no code runs from the file)."""
    ck = ckpt.load(path)
    system = build_system(ck.config)
    ckpt.check_compatible(ck.meta, init_meta(system, 0), str(path))
    return MetaGAN(system, ck.meta, ck.ema, ck.step)


def adapt(checkpoint: str | os.PathLike | MetaGAN, support, steps: int | None = None, seed: int = 0,
          use_ema: bool = True, keep_generator: bool = False) -> AdaptedGenerator:
    """One call: a checkpoint and support images (paths or a (K, C, H, W) tensor) -> adapted generator."""
    model = checkpoint if isinstance(checkpoint, MetaGAN) else load(checkpoint)
    if not isinstance(support, Tensor):
        support = model.read_support([Path(p) for p in support])
    return model.adapt(support, steps, torch.Generator().manual_seed(seed), use_ema, keep_generator)


__all__ = ["AdaptedGenerator", "MetaGAN", "adapt", "adapt_params", "check_select", "load"]
