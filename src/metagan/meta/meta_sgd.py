"""Meta-SGD (Li et al. 2017): MAML whose inner learning rate of every parameter is itself a
meta-parameter (a tensor of the parameter's shape), meta-trained by each player's query loss.
With first_order the inner gradients are constants, but the rates still receive the gradient
-g_inner * dL/dtheta' through theta' = theta - rate * g_inner.
"""
from __future__ import annotations

import torch

from ..functional import Meta, Params
from .maml import MAML
from .problem import GanProblem, InnerSchedule


class MetaSGD(MAML):
    name = "metasgd"

    def __init__(self, problem: GanProblem, sched: InnerSchedule, lr_g: float, lr_d: float,
                 first_order: bool = False):
        super().__init__(problem, sched, lr_g, lr_d, detach_inner=first_order)

    def init_meta(self, pg: Params, pd: Params) -> Meta:
        return {"g": pg, "d": pd,
                "lr_g": {k: torch.full_like(v, self.lr_g) for k, v in pg.items()},
                "lr_d": {k: torch.full_like(v, self.lr_d) for k, v in pd.items()}}

    def rates(self, meta: Meta):
        return meta["lr_g"], meta["lr_d"]
