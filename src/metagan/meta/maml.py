"""MAML (Finn et al. 2017) for GANs, second order, and its first-order approximation (as in DAWSON).

Each player's meta-gradient is the gradient of its own query loss at the adapted parameters, taken
through the unrolled inner loop (MAML) or, first order, with the inner gradients treated as constants,
which reduces to the gradient at the adapted parameters (FOMAML).

    >>> learner = MAML(problem, InnerSchedule(5, 1, 1), lr_g=0.05, lr_d=0.05)
    >>> meta = learner.init_meta(pg, pd)
    >>> grads, aux = learner.task_grads(meta, task)
"""
from __future__ import annotations

from torch.func import grad

from ..functional import Meta, detach
from .base import FixedRates, player_grads
from .problem import GanProblem, InnerSchedule


class MAML(FixedRates):
    name = "maml"

    def __init__(self, problem: GanProblem, sched: InnerSchedule, lr_g: float, lr_d: float,
                 detach_inner: bool = False):
        super().__init__(problem, sched, lr_g, lr_d)
        self.detach_inner = detach_inner  # MAML with detached inner gradients (= first order, slowly)

    @property
    def second_order(self) -> bool:
        """Whether the meta-gradient differentiates through the inner gradients."""
        return not self.detach_inner

    def _adapt_and_score(self, meta: Meta, task: dict):
        lr_g, lr_d = self.rates(meta)
        pg, pd, stats = self.problem.inner_loop(meta["g"], meta["d"], lr_g, lr_d, task["support"],
                                                task["noise"], self.sched, self.detach_inner)
        losses, aux = self.problem.outer_losses(pg, pd, task["support"], task["query"], task["noise"],
                                                d_feat=meta["d"])
        return losses, {**aux, **stats}

    def task_grads(self, meta: Meta, task: dict):
        return player_grads(lambda m: self._adapt_and_score(m, task), meta)

    def _grads_at_adapted(self, meta: Meta, task: dict, record: list | None = None):
        """Adapt first order without an outer graph, then each player's gradient of its own query loss at the
        adapted parameters (one backward): ({"g", "d"} grads, aux with the inner stats). record: passed to the
        inner loop (it lists the inner steps)."""
        lr_g, lr_d = self.rates(detach(meta))
        steps = {} if record is None else {"record": record}
        pg, pd, stats = self.problem.inner_loop(detach(meta["g"]), detach(meta["d"]), lr_g, lr_d, task["support"],
                                                task["noise"], self.sched, True, **steps)
        adapted = {"g": detach(pg), "d": detach(pd)}
        grads, aux = grad(self.problem.own_losses_sum, has_aux=True)(adapted, task["support"], task["query"],
                                                                     task["noise"], meta["d"])
        return grads, {**aux, **stats}


class FOMAML(MAML):
    """First-order MAML: adapt without an outer graph, then differentiate the query losses there."""

    name = "fomaml"
    second_order = False

    def task_grads(self, meta: Meta, task: dict):
        return self._grads_at_adapted(meta, task)
