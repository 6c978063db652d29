"""Joint pre-training (no inner loop): the transfer-learning baseline a practitioner would try first.

Each player takes the plain gradient of its GAN loss on the task's real images (support and query,
one class per task, many classes per meta-batch) at the current parameters, so meta-training is
ordinary GAN training on all training classes together. Adapting such a checkpoint on K shots with the
usual inner loop is "pre-train, then fine-tune".
"""
from __future__ import annotations

import torch

from ..functional import Meta, Params, constant_rates
from .base import player_grads
from .problem import GanProblem, InnerSchedule


class Joint:
    name = "joint"

    def __init__(self, problem: GanProblem, sched: InnerSchedule, lr_g: float, lr_d: float):
        self.problem, self.sched = problem, sched  # sched and rates serve fine-tuning (adaptation)
        self.lr_g, self.lr_d = lr_g, lr_d

    def init_meta(self, pg: Params, pd: Params) -> Meta:
        return {"g": pg, "d": pd}

    def rates(self, meta: Meta):
        return constant_rates(meta["g"], self.lr_g), constant_rates(meta["d"], self.lr_d)

    def task_grads(self, meta: Meta, task: dict):
        real = torch.cat([task["support"], task["query"]])
        noise = {"z_o": torch.cat([task["noise"]["z_d"][0, 0], task["noise"]["z_o"]]),
                 "eps_o": torch.cat([task["noise"]["eps_d"][0, 0], task["noise"]["eps_o"]])}
        return player_grads(
            lambda m: self.problem.outer_losses(m["g"], m["d"], task["support"], real, noise), meta)
