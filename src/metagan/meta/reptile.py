"""Reptile (Nichol et al. 2018) for GANs, as in FIGR (Clouatre & Demers 2019).

The inner loop trains the GAN on the task's support set; the meta-gradient is the displacement
theta - theta' of each player, which an outer SGD step with learning rate epsilon turns into
theta <- theta + epsilon (theta' - theta). The query set is not used.
"""
from __future__ import annotations

from ..functional import Meta, detach
from .base import FixedRates


class Reptile(FixedRates):
    name = "reptile"

    def task_grads(self, meta: Meta, task: dict):
        lr_g, lr_d = self.rates(meta)
        g0, d0 = detach(meta["g"]), detach(meta["d"])
        pg, pd, stats = self.problem.inner_loop(g0, d0, lr_g, lr_d, task["support"], task["noise"],
                                                self.sched, True)
        grads = {"g": {k: g0[k] - pg[k] for k in g0}, "d": {k: d0[k] - pd[k] for k in d0}}
        return grads, stats
