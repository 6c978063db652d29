"""Meta-learners over parameter dicts: MAML, first-order MAML, Reptile, Meta-SGD."""
from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import MetaLearner, meta_gradients, player_grads
from .joint import Joint
from .maml import FOMAML, MAML
from .meta_sgd import MetaSGD
from .problem import GanProblem, InnerSchedule, sample_noise
from .reptile import Reptile

__all__ = ["MetaLearner", "MAML", "FOMAML", "Reptile", "MetaSGD", "Joint", "GanProblem", "InnerSchedule",
           "build_learner", "meta_gradients", "player_grads", "sample_noise"]


def build_learner(cfg: Config, problem: GanProblem) -> MetaLearner:
    m = cfg.meta
    sched = InnerSchedule(m.inner_steps, m.n_d, m.n_g)
    if m.learner == "maml":
        return MAML(problem, sched, m.inner_lr_g, m.inner_lr_d)
    if m.learner == "fomaml":
        return FOMAML(problem, sched, m.inner_lr_g, m.inner_lr_d)
    if m.learner == "reptile":
        return Reptile(problem, sched, m.inner_lr_g, m.inner_lr_d)
    if m.learner == "metasgd":
        return MetaSGD(problem, sched, m.inner_lr_g, m.inner_lr_d, first_order=m.first_order,
                       per_tensor=m.rates == "tensor", per_step=m.rates == "step")
    if m.learner == "joint":
        if m.n_d < 1:
            raise ConfigError("meta.learner=joint draws its fake batch from the discriminator noise: set meta.n_d >= 1")
        return Joint(problem, sched, m.inner_lr_g, m.inner_lr_d)
    raise ConfigError(f"meta.learner={m.learner!r} is not one of: maml, fomaml, reptile, metasgd, joint")
