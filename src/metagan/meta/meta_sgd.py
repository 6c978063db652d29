"""Meta-SGD (Li et al. 2017): MAML whose inner learning rate of every parameter is itself a
meta-parameter (a tensor of the parameter's shape), meta-trained by each player's query loss.
With first_order the inner gradients are constants, but the rates still receive the gradient
-g_inner * dL/dtheta' through theta' = theta - rate * g_inner.

per_tensor (meta.rates=tensor): one rate per weight or bias tensor (a 0-dim tensor that broadcasts over its
parameter) instead of one per scalar parameter; its meta-gradient is the sum of the element-wise ones.

per_step (meta.rates=step, MAML++'s learned per-layer per-step rates, Antoniou et al. 2019): one rate per tensor
and per inner step, a (T,) tensor; step t of the inner loop uses entry t (an adaptation longer than T keeps the last).
"""
from __future__ import annotations

import torch

from ..functional import Meta, Params
from .maml import MAML
from .problem import GanProblem, InnerSchedule


class MetaSGD(MAML):
    name = "metasgd"

    def __init__(self, problem: GanProblem, sched: InnerSchedule, lr_g: float, lr_d: float,
                 first_order: bool = False, per_tensor: bool = False, per_step: bool = False):
        super().__init__(problem, sched, lr_g, lr_d, detach_inner=first_order)
        self.per_tensor, self.per_step = per_tensor, per_step

    def _rates_like(self, params: Params, lr: float) -> Params:
        if self.per_step:
            return {k: torch.full((self.sched.steps,), lr, dtype=v.dtype, device=v.device) for k, v in params.items()}
        if self.per_tensor:
            return {k: torch.tensor(lr, dtype=v.dtype, device=v.device) for k, v in params.items()}
        return {k: torch.full_like(v, lr) for k, v in params.items()}

    def init_meta(self, pg: Params, pd: Params) -> Meta:
        return {"g": pg, "d": pd, "lr_g": self._rates_like(pg, self.lr_g), "lr_d": self._rates_like(pd, self.lr_d)}

    def rates(self, meta: Meta):
        """(lr_g, lr_d): name -> rate maps, or with per_step a list of T such maps (one per inner step)."""
        if self.per_step:
            return tuple([{k: v[t] for k, v in meta[group].items()} for t in range(self.sched.steps)]
                         for group in ("lr_g", "lr_d"))
        return meta["lr_g"], meta["lr_d"]

    def task_grads(self, meta: Meta, task: dict):
        """First order: the adapted parameters are theta - sum_t rate_t * g_t with every g_t a
        constant, so each player's meta-gradient is its query loss's gradient at the adapted parameters (one
        backward, as FOMAML) and rate_t's is -(that gradient) * g_t, summed over the updates that used it and
        reduced to the rate's shape. The same values as differentiating through the unrolled loop, without
        a backward pass through it. Otherwise (second order, or a problem whose inner loop does not record its
        steps): MAML's path."""
        if not (self.detach_inner and getattr(self.problem, "records_inner_steps", False)):
            return super().task_grads(meta, task)
        steps: list = []
        grads, aux = self._grads_at_adapted(meta, task, steps)
        rate_grads = {group: {k: torch.zeros_like(v) for k, v in meta[group].items()} for group in ("lr_g", "lr_d")}
        last = self.sched.steps - 1
        for player, t, g in steps:
            into = rate_grads["lr_" + player]
            for k, gk in g.items():
                contrib = -(grads[player][k] * gk)
                if self.per_step:
                    at_t = (torch.arange(last + 1, device=contrib.device) == min(t, last)).to(contrib.dtype)
                    into[k] = into[k] + at_t * contrib.sum()
                elif self.per_tensor:
                    into[k] = into[k] + contrib.sum()
                else:
                    into[k] = into[k] + contrib
        return {**grads, **rate_grads}, aux
