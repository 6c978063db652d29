"""Assemble the parts a config names: sample shape -> models -> GAN problem -> meta-learner -> meta-params.

    >>> from metagan.config import get_preset
    >>> system = build_system(get_preset("tiny"))
    >>> meta = init_meta(system, seed=0)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config
from .functional import Meta, params_of
from .meta import GanProblem, MetaLearner, build_learner
from .models import build_models


@dataclass
class System:
    cfg: Config
    shape: tuple[int, ...]
    problem: GanProblem
    learner: MetaLearner


def sample_shape(cfg: Config) -> tuple[int, ...]:
    """One example's shape: images (C, S, S), series (C, L)."""
    from .data import sample_shape as data_shape

    return data_shape(cfg.data)


def _networks(cfg: Config, shape: tuple[int, ...]):
    """The config's generator and discriminator (the generator with its posterior encoder when loss.recon trains one),
    initialised from the global RNG."""
    return build_models(cfg.model, shape, posterior=cfg.loss.recon > 0)


def build_system(cfg: Config) -> System:
    shape = sample_shape(cfg)
    # Module construction draws initial weights from the global RNG: fork it so building a system
    # never disturbs the caller's random state; init_meta re-seeds explicitly.
    with torch.random.fork_rng(devices=[]):
        gen, disc = _networks(cfg, shape)
    problem = GanProblem(gen, disc, cfg.loss)
    return System(cfg, shape, problem, build_learner(cfg, problem))


def init_meta(system: System, seed: int, dtype: torch.dtype = torch.float32) -> Meta:
    """Fresh meta-parameters: the models' default init drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen, disc = _networks(system.cfg, system.shape)
    pg = {k: v.to(dtype) for k, v in params_of(gen).items()}
    pd = {k: v.to(dtype) for k, v in params_of(disc).items()}
    return system.learner.init_meta(pg, pd)
