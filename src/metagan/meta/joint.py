"""Joint pre-training (no inner loop): the transfer-learning baseline a practitioner would try first.

Each player takes the plain gradient of its GAN loss on the task's real images (support and query,
one class per task, many classes per meta-batch) at the current parameters, so meta-training is
ordinary GAN training on all training classes together. Adapting such a checkpoint on K shots with the
usual inner loop is "pre-train, then fine-tune".
"""
from __future__ import annotations

import torch

from ..functional import Meta
from .base import FixedRates, player_grads


class Joint(FixedRates):
    """The rates and inner schedule serve fine-tuning (adaptation) only."""

    name = "joint"

    def task_grads(self, meta: Meta, task: dict):
        # real_shift=1: a paired model sees support image i beside support image i+1, never beside itself
        real = torch.cat([task["support"], task["query"]])
        noise = {"z_o": torch.cat([task["noise"]["z_d"][0, 0], task["noise"]["z_o"]]),
                 "eps_o": torch.cat([task["noise"]["eps_d"][0, 0], task["noise"]["eps_o"]])}
        if "other" in task["noise"]:
            noise["other"] = task["noise"]["other"]
        return player_grads(
            lambda m: self.problem.outer_losses(m["g"], m["d"], task["support"], real, noise, real_shift=1,
                                                d_feat=m["d"]), meta)
