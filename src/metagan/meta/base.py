"""The meta-learner protocol and the meta-batch driver (vmap over tasks, or the per-task loop).

A meta-learner is a small object over pure functions:
    init_meta(pg, pd) -> meta                 the meta-parameters ({"g", "d"} and learner extras)
    task_grads(meta, task) -> (grads, aux)    one task's meta-gradient, same structure as meta
    rates(meta) -> (lr_g, lr_d)               inner learning rates, for adaptation
A task is {"support": (K, ...), "query": (Q, ...), "noise": {...}} (see problem.py).
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor
from torch.func import vjp, vmap
from torch.utils._pytree import tree_map

from ..functional import Meta, Params, constant_rates, index
from ..models.resample import any_order_resampling
from .problem import InnerSchedule


class Problem(Protocol):
    """What the learners call on a task's objective: GanProblem (images, series) and its siblings for other task
    families (metagan.ratings.problem: a user's ratings) implement it. first_order detaches the inner gradients."""

    z_dim: int

    def inner_loop(self, pg: Params, pd: Params, lr_g, lr_d, support: Tensor, noise: dict[str, Tensor],
                   sched: InnerSchedule, first_order: bool) -> tuple[Params, Params, dict[str, Tensor]]: ...

    def outer_losses(self, pg: Params, pd: Params, support: Tensor, query: Tensor, noise: dict[str, Tensor],
                     real_shift: int = 0, d_feat: Params | None = None): ...

    def own_losses_sum(self, p: Meta, support: Tensor, query: Tensor, noise: dict[str, Tensor],
                       d_feat: Params | None = None): ...


class MetaLearner(Protocol):
    name: str
    problem: Problem
    sched: InnerSchedule

    def init_meta(self, pg: Params, pd: Params) -> Meta: ...

    def task_grads(self, meta: Meta, task: dict) -> tuple[Meta, dict[str, Tensor]]: ...

    def rates(self, meta: Meta) -> tuple[dict, dict]: ...


class FixedRates:
    """Shared by learners whose inner learning rates are two fixed scalars (MAML, FOMAML, Reptile, joint):
    the meta-parameters are the two players' parameters, nothing else."""

    second_order = False

    def __init__(self, problem: Problem, sched: InnerSchedule, lr_g: float, lr_d: float):
        self.problem, self.sched = problem, sched
        self.lr_g, self.lr_d = lr_g, lr_d

    def init_meta(self, pg: Params, pd: Params) -> Meta:
        return {"g": pg, "d": pd}

    def rates(self, meta: Meta):
        return constant_rates(meta["g"], self.lr_g), constant_rates(meta["d"], self.lr_d)


def player_grads(fn, primals: Meta) -> tuple[Meta, dict[str, Tensor]]:
    """Each player's gradient of its own loss: fn(primals) -> ((L_D, L_G), aux).

    Groups "d" and "lr_d" take d L_D; "g" and "lr_g" take d L_G. One forward; the two backward passes (one
    per loss; each needs the whole graph when both players' adaptation depends on both) run as one pass
    vectorised over the two cotangents, which does the same arithmetic in half the operator calls."""
    (ld, lg), vjp_fn, aux = vjp(fn, primals, has_aux=True)
    eye = torch.eye(2, dtype=ld.dtype, device=ld.device)
    (g,) = vmap(vjp_fn)((eye[:, 0], eye[:, 1]))  # each leaf (2, *shape): row 0 d L_D, row 1 d L_G
    return {group: {k: v[0 if group.endswith("d") else 1] for k, v in g[group].items()} for group in primals}, aux


def meta_gradients(learner: MetaLearner, meta: Meta, tasks: dict, mode: str = "vmap"):
    """Mean meta-gradient over a meta-batch (tasks carry a leading B dim). mode: vmap | loop.

    Second-order learners resample images by gathering (metagan.models.resample) in both modes: grid_sample's
    double backward cannot run under vmap, and one resampler gives both modes the same second derivatives where
    a warp puts points exactly on pixel centres (an untrained warp's identity), which grid_sample's double
    backward rounds differently from its first."""
    if mode not in ("vmap", "loop"):
        raise ValueError(f"mode must be vmap or loop, got {mode!r}")
    with any_order_resampling(getattr(learner, "second_order", False)):
        if mode == "vmap":
            grads, aux = vmap(learner.task_grads, in_dims=(None, 0))(meta, tasks)
            return tree_map(lambda g: g.mean(0), grads), tree_map(lambda a: a.mean(0), aux)
        n = tasks["support"].shape[0]
        total_g = total_a = None
        for i in range(n):
            g, a = learner.task_grads(meta, index(tasks, i))
            total_g = g if total_g is None else tree_map(torch.add, total_g, g)
            total_a = a if total_a is None else tree_map(torch.add, total_a, a)
        return tree_map(lambda t: t / n, total_g), tree_map(lambda t: t / n, total_a)
