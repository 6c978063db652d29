"""A topic as a meta-learning problem, behind the protocol metagan's meta-learners call (meta/base.py `Problem`):
inner_loop, outer_losses, own_losses_sum, z_dim. MAML, FOMAML, Reptile, Meta-SGD and joint training run unchanged.

A task's support and query are rows (K, Lp + Lr) / (Q, Lp + Lr) of byte tokens (tokens.pair): exchanges of one
topic. The generator answers prompts; the discriminator judges (prompt, reply) pairs.
    inner loop (the topic's support exchanges), per step:
        # Dmain  n_d updates: D tells the support replies from G's sampled replies to the same prompts
        # Gmain  n_g updates: ml x teacher-forced cross-entropy of the support replies
        #                     + inner_adv x G's adversarial loss on its sampled replies (straight-through Gumbel)
    outer losses (the query exchanges, after adaptation):
        # Dmain  D tells the query replies from G's replies to the query prompts
        # Gmain  ml x cross-entropy of the query replies + outer_adv x G's adversarial loss
The cross-entropy keeps replies fluent: a discriminator alone gives a sparse, high-variance signal through
discrete bytes and lets G drift into degenerate text; the adversarial term pushes G's own samples (what it
produces free-running, not under teacher forcing) towards what D takes for the topic's replies.

A retrieve-and-edit generator (model.copy) reads the task's support exchanges as its memory everywhere: in the
inner loop each support row reads the other support exchanges (never its own), on the query all of them.

With inner_adv = outer_adv = 0 the problem is a plain conditional language model (PAML-style): D is never run, its
loss is a constant 0, and z carries no Gumbel noise.

Noise of one task (meta.problem.sample_noise with z_dim = self.z_dim, k = K, q = Q): z_d (T, n_d, K, z), z_g
(T, n_g, K, z), z_o (Q, z); a z row is the latent and the Gumbel noise of one sampled reply (models.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad

from .. import losses
from ..functional import Params, detach, inner_update
from ..meta.problem import InnerSchedule
from .models import PairDiscriminator, ReplyGenerator, one_hot
from .tokens import PAD, split


def reply_nll(logits: Tensor, replies: Tensor) -> tuple[Tensor, Tensor]:
    """Summed negative log-likelihood (nats) of the reply bytes (EOS included, PAD excluded) and their count:
    logits (B, Lr, V), replies (B, Lr) int64 -> (scalar, scalar)."""
    mask = (replies != PAD).to(logits.dtype)
    ce = F.cross_entropy(logits.transpose(1, 2), replies, reduction="none")  # (B, Lr)
    return (ce * mask).sum(), mask.sum()


class DialogueProblem:
    records_inner_steps = True  # inner_loop(record=[...]) lists its first-order steps: Meta-SGD's closed form

    def __init__(self, gen: ReplyGenerator, disc: PairDiscriminator, loss, prompt_len: int, tau: float):
        self.gen, self.disc, self.loss, self.lp, self.tau = gen, disc, loss, prompt_len, tau
        self.adversarial = loss.inner_adv > 0 or loss.outer_adv > 0
        self.z_dim = gen.noise_dim(self.adversarial)
        self._d_main = losses.D_LOSSES[loss.kind]
        self._g_main = losses.G_LOSSES[loss.kind]

    def memory(self, support: Tensor | None, rows: Tensor | None = None, n: int = 0):
        """The memory a retrieve-and-edit generator reads (None for the plain one): the support rows (M, Lp + Lr)
        and which slots each of `rows` (B, Lp + Lr) may read (not its own exchange, compared byte by byte); without
        rows, n rows that may read every slot."""
        if not self.gen.copy or support is None:  # without supports the generator says what it needs
            return None
        mp, mr = split(support, self.lp)
        if rows is None:
            allowed = torch.ones(n, support.shape[0], dtype=torch.bool, device=support.device)
        else:
            allowed = ~(rows[:, None, :] == support[None]).all(-1)
        return mp, mr, allowed

    def nll(self, pg: Params, rows: Tensor, z: Tensor, support: Tensor | None = None) -> Tensor:
        """Mean NLL per reply byte (nats) of rows (B, Lp + Lr) under G at latents z (B, >= z_dim); support: the
        memory of a retrieve-and-edit generator."""
        prompts, replies = split(rows, self.lp)
        logits = functional_call(self.gen, pg, (z, prompts, replies), {"memory": self.memory(support, rows)})
        total, count = reply_nll(logits, replies)
        return total / count.clamp(min=1.0)

    def sample(self, pg: Params, prompts: Tensor, z: Tensor, temperature: float = 1.0, memory=None) -> Tensor:
        """prompts (B, Lp), z (B, z_dim) -> straight-through one-hot replies (B, Lr, V); memory: self.memory's."""
        return functional_call(self.gen, pg, (z, prompts),
                               {"tau": self.tau, "temperature": temperature, "memory": memory})

    def d_loss(self, pd: Params, prompts: Tensor, replies: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D's loss on real replies (B, Lr) int64 against fakes (B', Lr, V) for the same prompts, in one batch;
        and the fakes' logits (for G's loss)."""
        real = one_hot(replies, fake.shape[-1], fake.dtype)
        logits = functional_call(self.disc, pd, (torch.cat([prompts, prompts[:fake.shape[0]]]),
                                                 torch.cat([real, fake])))
        n = replies.shape[0]
        return self._d_main(logits[:n], logits[n:]), logits[n:]

    def g_adv(self, pg: Params, pd: Params, prompts: Tensor, z: Tensor, memory=None) -> Tensor:
        fake = self.sample(pg, prompts, z, memory=memory)
        return self._g_main(functional_call(self.disc, pd, (prompts, fake)))

    def _zero(self, pd: Params) -> Tensor:
        """D's loss when there is no D (a plain LM): 0, still a function of pd so gradients are zeros."""
        return sum(v.sum() for v in pd.values()) * 0.0

    def outer_losses(self, pg: Params, pd: Params, support: Tensor, query: Tensor, noise: dict[str, Tensor],
                     real_shift: int = 0, d_feat: Params | None = None):
        """Query losses (L_D, L_G) of adapted parameters; aux for logging. real_shift, d_feat: unused here (the
        joint learner passes support and query together as the query)."""
        z = noise["z_o"]
        ml = self.nll(pg, query, z, support)
        prompts, replies = split(query, self.lp)
        if self.adversarial:
            fake = self.sample(pg, prompts, z, memory=self.memory(support, query))
            ld, fake_logits = self.d_loss(pd, prompts, replies, fake)
            lg = self.loss.ml * ml + self.loss.outer_adv * self._g_main(fake_logits)
        else:
            ld, lg = self._zero(pd), self.loss.ml * ml
        return (ld, lg), {"d_loss": ld.detach(), "g_loss": lg.detach(), "nll": ml.detach()}

    def own_losses_sum(self, p: dict[str, Params], support: Tensor, query: Tensor, noise: dict[str, Tensor],
                       d_feat: Params | None = None):
        """L_D(pd; fakes held constant) + L_G(pg; D held constant): one scalar whose gradient is each player's
        gradient of its own query loss."""
        z = noise["z_o"]
        ml = self.nll(p["g"], query, z, support)
        prompts, replies = split(query, self.lp)
        if self.adversarial:
            fake = self.sample(p["g"], prompts, z, memory=self.memory(support, query))
            ld, _ = self.d_loss(p["d"], prompts, replies, fake.detach())
            adv = self._g_main(functional_call(self.disc, detach(p["d"]), (prompts, fake)))
            lg = self.loss.ml * ml + self.loss.outer_adv * adv
        else:
            ld, lg = self._zero(p["d"]), self.loss.ml * ml
        return ld + lg, {"d_loss": ld.detach(), "g_loss": lg.detach(), "nll": ml.detach()}

    def inner_loop(self, pg: Params, pd: Params, lr_g, lr_d, support: Tensor, noise: dict[str, Tensor],
                   sched: InnerSchedule, first_order: bool, record: list | None = None
                   ) -> tuple[Params, Params, dict[str, Tensor]]:
        """SGD on the topic's support exchanges: per step n_d discriminator then n_g generator updates (no
        discriminator updates for a plain LM). lr_g / lr_d: floats (MAML) or tensors (Meta-SGD) per parameter.
        record: as GanProblem.inner_loop's."""
        prompts, replies = split(support, self.lp)
        memory = self.memory(support, support)  # each support row reads the others

        def d_obj(pd_, fake):
            loss, _ = self.d_loss(pd_, prompts, replies, fake)
            return loss, loss

        def g_obj(pg_, pd_, z):
            loss = self.loss.ml * self.nll(pg_, support, z, support)
            if self.adversarial and self.loss.inner_adv > 0:
                loss = loss + self.loss.inner_adv * self.g_adv(pg_, pd_, prompts, z, memory)
            return loss, loss

        stats = {}
        for t in range(sched.steps):
            for j in range(sched.n_d if self.adversarial else 0):
                fake = self.sample(pg, prompts, noise["z_d"][t, j], memory=memory)
                g, stats["inner_d"] = grad(d_obj, has_aux=True)(pd, fake)
                pd = inner_update(pd, g, lr_d, first_order, record, ("d", t))
            for j in range(sched.n_g):
                g, stats["inner_g"] = grad(g_obj, has_aux=True)(pg, pd, noise["z_g"][t, j])
                pg = inner_update(pg, g, lr_g, first_order, record, ("g", t))
        return pg, pd, {k: v.detach() for k, v in stats.items()}
