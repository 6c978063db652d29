"""User tasks as meta-learning problems, behind the protocol metagan's meta-learners call (meta/base.py `Problem`):
inner_loop, outer_losses, own_losses_sum, z_dim. The learners (MAML, FOMAML, Reptile, Meta-SGD, joint) run
unchanged.

RatingGanProblem, a conditional GAN over item vectors (CFGAN-style). A task's support and query are rows
(S, 4) / (Q, 4) of (user, item, label, present) (tasks.sparse_batch): two sparse item vectors of one user; the
support is always the condition.
    inner loop (the user's support set):
        # Dmain  D tells the support vector from G's vectors, both seen at the support items
        # Gmain  inner_adv x G fooling D there + rec x its error on the support labels
    outer losses (the query set, after adaptation):
        # Dmain  D tells the query vector from G's, both seen at the query items, beside the support condition
        # Gmain  outer_adv x its adversarial loss + rec x its error on the query labels
The error is the squared error on ratings, the cross-entropy on clicks.

MeluProblem, MeLU: "g" holds the decision layers (adapted in the inner loop), "d" the embeddings (meta-learned,
never adapted); both players' loss is the query error, so each group takes the MAML gradient of that one loss.

Noise of one task (meta.problem.sample_noise with k = q = task.fakes): z_d, z_g (T, n, fakes, z_dim), z_o (fakes,
z_dim); eps_d, eps_o are drawn and unused.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad

from .. import losses
from ..functional import Params, detach, inner_update
from ..meta.problem import InnerSchedule
from .models import MeluNet


def label_error(pred: Tensor, target: Tensor, mask: Tensor, clicks: bool) -> Tensor:
    """Mean error of predictions (B, n) against target (n,) over the mask (n,): squared, or for clicks the
    cross-entropy of the predicted probabilities."""
    if clicks:
        err = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), target.expand_as(pred), reduction="none")
    else:
        err = (pred - target) ** 2
    return (err * mask).sum(-1).mean() / mask.sum().clamp(min=1.0)


class RatingGanProblem:
    records_inner_steps = True  # inner_loop(record=[...]) lists its first-order steps: Meta-SGD's closed form

    def __init__(self, gen: nn.Module, disc: nn.Module, loss, clicks: bool, adapt: str = "head"):
        self.gen, self.disc, self.loss, self.clicks, self.adapt = gen, disc, loss, clicks, adapt
        self.z_dim = gen.z_dim
        self._d_main = losses.D_LOSSES[loss.kind]
        self._g_main = losses.G_LOSSES[loss.kind]

    def generate(self, pg: Params, z: Tensor, support: Tensor, at: Tensor) -> Tensor:
        """z (B, z_dim), support rows (S, 4), items at (L,) -> (B, L) predicted labels."""
        return functional_call(self.gen, pg, (z, support, at))

    def d_loss(self, pd: Params, real: Tensor, fake: Tensor, support: Tensor) -> Tensor:
        """real rows (R, 4): one real item vector; fake (F, R): generated labels of the same items."""
        x = torch.cat([real[None, :, 2], fake])
        logits = functional_call(self.disc, pd, (x, real[:, 1].long(), real[:, 3], support))
        return self._d_main(logits[:1], logits[1:])

    def g_loss(self, pg: Params, pd: Params, z: Tensor, support: Tensor, target: Tensor, adv: float) -> Tensor:
        """G's loss against the real item vector of the rows target (R, 4): rec x its error + adv x its adversarial
        loss."""
        fake = self.generate(pg, z, support, target[:, 1].long())
        loss = self.loss.rec * label_error(fake, target[:, 2], target[:, 3], self.clicks)
        if adv > 0:
            logits = functional_call(self.disc, pd, (fake, target[:, 1].long(), target[:, 3], support))
            loss = loss + adv * self._g_main(logits)
        return loss

    def outer_losses(self, pg: Params, pd: Params, support: Tensor, query: Tensor, noise: dict[str, Tensor],
                     real_shift: int = 0, d_feat: Params | None = None):
        """Query losses (L_D, L_G) of adapted parameters; aux for logging. real_shift, d_feat: unused here.
        (The joint learner passes support and query together as the query: one real vector of all the rows.)"""
        fake = self.generate(pg, noise["z_o"], support, query[:, 1].long())
        ld = self.d_loss(pd, query, fake, support)
        lg = self.g_loss(pg, pd, noise["z_o"], support, query, self.loss.outer_adv)
        return (ld, lg), {"d_loss": ld.detach(), "g_loss": lg.detach()}

    def own_losses_sum(self, p: dict[str, Params], support: Tensor, query: Tensor, noise: dict[str, Tensor],
                       d_feat: Params | None = None):
        """L_D(pd; fake held constant) + L_G(pg; D held constant): one scalar whose gradient is each player's
        gradient of its own query loss."""
        fake = self.generate(p["g"], noise["z_o"], support, query[:, 1].long()).detach()
        ld = self.d_loss(p["d"], query, fake, support)
        lg = self.g_loss(p["g"], detach(p["d"]), noise["z_o"], support, query, self.loss.outer_adv)
        return ld + lg, {"d_loss": ld.detach(), "g_loss": lg.detach()}

    def inner_loop(self, pg: Params, pd: Params, lr_g, lr_d, support: Tensor, noise: dict[str, Tensor],
                   sched: InnerSchedule, first_order: bool, record: list | None = None
                   ) -> tuple[Params, Params, dict[str, Tensor]]:
        """SGD on the user's support set: per step n_d discriminator then n_g generator updates, of the
        parameters `partition` adapts (the rest are read, not differentiated: no per-user copy of them).
        record: as GanProblem.inner_loop's."""
        (ag, fg), (ad, fd) = self.partition(pg), self.partition(pd)
        items = support[:, 1].long()

        def d_obj(ad_, fake):
            loss = self.d_loss({**fd, **ad_}, support, fake, support)
            return loss, loss

        def g_obj(ag_, pd_, z):
            loss = self.g_loss({**fg, **ag_}, pd_, z, support, support, self.loss.inner_adv)
            return loss, loss

        stats = {}
        for t in range(sched.steps):
            for j in range(sched.n_d):
                fake = self.generate({**fg, **ag}, noise["z_d"][t, j], support, items)
                g, stats["inner_d"] = grad(d_obj, has_aux=True)(ad, fake)
                ad = inner_update(ad, g, lr_d, first_order, record, ("d", t))
            for j in range(sched.n_g):
                g, stats["inner_g"] = grad(g_obj, has_aux=True)(ag, {**fd, **ad}, noise["z_g"][t, j])
                ag = inner_update(ag, g, lr_g, first_order, record, ("g", t))
        return {**fg, **ag}, {**fd, **ad}, {k: v.detach() for k, v in stats.items()}

    def partition(self, params: Params) -> tuple[Params, Params]:
        """(adapted, fixed) parts of a player's parameters: all adapted, or with adapt="head" the layers after the
        item-vector readers (G: mix and the items' output biases; D: mid, logit)."""
        if self.adapt == "all":
            return params, {}
        head = ("mix.", "out_b", "mid.", "logit.")
        return ({k: v for k, v in params.items() if k.startswith(head)},
                {k: v for k, v in params.items() if not k.startswith(head)})

    def score(self, pg: Params, support: Tensor, n_items: int) -> Tensor:
        """Predicted labels of every item (n_items,) for a user's support rows (S, 4), at the latent's mean z = 0:
        the whole generated item vector, what recommendations rank."""
        ref = next(iter(pg.values()))
        return self.generate(pg, torch.zeros(1, self.z_dim, dtype=ref.dtype), support,
                             torch.arange(n_items, device=ref.device))[0]


class MeluProblem:
    """Tasks are sparse rows (S, 4) of (user, item, label, present) (tasks.sparse_batch)."""

    def __init__(self, net: nn.Module, clicks: bool):
        self.net, self.clicks, self.z_dim = net, clicks, 1

    @staticmethod
    def split_params(params: Params) -> tuple[Params, Params]:
        """A MeluNet's parameters -> (decision layers, embeddings): the learners' "g" and "d"."""
        dec = {k: v for k, v in params.items() if k.startswith(MeluNet.DECISION)}
        return dec, {k: v for k, v in params.items() if k not in dec}

    def predict(self, pg: Params, pd: Params, rows: Tensor) -> Tensor:
        """rows (S, 4) -> (S,) predicted labels in (0, 1)."""
        logits = functional_call(self.net, {**pg, **pd}, (rows[:, 0].long(), rows[:, 1].long()))
        return torch.sigmoid(logits)

    def error(self, pg: Params, pd: Params, rows: Tensor) -> Tensor:
        return label_error(self.predict(pg, pd, rows)[None], rows[:, 2], rows[:, 3], self.clicks)

    def outer_losses(self, pg: Params, pd: Params, support: Tensor, query: Tensor, noise: dict[str, Tensor],
                     real_shift: int = 0, d_feat: Params | None = None):
        loss = self.error(pg, pd, query if query.shape[0] else support)
        return (loss, loss), {"d_loss": loss.detach(), "g_loss": loss.detach()}

    def own_losses_sum(self, p: dict[str, Params], support: Tensor, query: Tensor, noise: dict[str, Tensor],
                       d_feat: Params | None = None):
        loss = self.error(p["g"], p["d"], query)
        return loss, {"d_loss": loss.detach(), "g_loss": loss.detach()}

    def inner_loop(self, pg: Params, pd: Params, lr_g, lr_d, support: Tensor, noise: dict[str, Tensor],
                   sched: InnerSchedule, first_order: bool) -> tuple[Params, Params, dict[str, Tensor]]:
        """SGD of the decision layers on the support error, steps x n_g updates; the embeddings stay."""
        def obj(pg_):
            loss = self.error(pg_, pd, support)
            return loss, loss

        stats = {}
        for _ in range(sched.steps * max(1, sched.n_g)):
            g, stats["inner_g"] = grad(obj, has_aux=True)(pg)
            pg = inner_update(pg, g, lr_g, first_order)
        return pg, pd, {k: v.detach() for k, v in stats.items()}
