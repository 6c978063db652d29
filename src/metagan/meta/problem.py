"""The adversarial task objective and the inner loop that every meta-learner (and adaptation) shares.

A `GanProblem` binds a generator and discriminator (used only through `call_module`: `functional_call`, or the
module's own `functional(params, ...)` where it has one) to a loss.
All randomness of a task is drawn up front into a noise dict, so a task's computation is a pure
function of (parameters, data, noise): the per-task loop and `vmap` over tasks give the same result.

Noise of one task (B = K, the fake batch matches the real support batch; Q query):
    z_d   (T, n_d, K, z_dim)   latents of the discriminator updates
    eps_d (T, n_d, K)          WGAN-GP mixing weights of those updates
    z_g   (T, n_g, K, z_dim)   latents of the generator updates
    z_o   (Q, z_dim), eps_o (Q,)   the outer (query) losses
    other (K, *shape)          loss.mismatch > 0, meta-training only: the support images of another task's
                               class, for the matching-aware term of D's losses (absent when adapting to a
                               user's K shots, where no other class is at hand)
The diversity term of G's losses (loss.diversity) pairs each latent z with -z, so it needs no noise of its own.

Paired models (model.condition=image) see one reference support image per sample instead of the whole support
set (`refs`): generated sample i transforms support image i mod K; in the inner loop real support image i is
paired with support image i+1 mod K (a different drawing of the class; with K = 1 the image itself), and in
the outer loss query image j with support image j mod K.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from .. import losses
from ..config import LossConfig
from ..functional import Params, detach, inner_update, rate_at


@dataclass(frozen=True)
class InnerSchedule:
    steps: int  # T
    n_d: int
    n_g: int


class GanProblem:
    records_inner_steps = True  # inner_loop(record=[...]) lists its first-order steps: Meta-SGD's closed form

    def __init__(self, gen: nn.Module, disc: nn.Module, loss: LossConfig):
        self.gen, self.disc, self.loss = gen, disc, loss
        self.z_dim = gen.z_dim
        self.paired = getattr(gen, "paired", False)
        self._d_main = losses.D_LOSSES[loss.kind]
        self._g_main = losses.G_LOSSES[loss.kind]

    def refs(self, context: Tensor, n: int, shift: int = 0) -> Tensor:
        """What the networks read as context for n samples: the support set (K, *shape) itself, or for paired
        models the reference images (n, *shape), sample i getting support image (i + shift) mod K."""
        if not self.paired:
            return context
        idx = (torch.arange(n, device=context.device) + shift) % context.shape[0]
        return context[idx]

    def d_contexts(self, context: Tensor, n_real: int, n_fake: int, real_shift: int = 0):
        """Contexts of a discriminator batch [real (n_real), fake (n_fake)]: (of the reals, of the fakes, of
        the whole batch). Unpaired models read the support set in all three."""
        ctx_r, ctx_f = self.refs(context, n_real, real_shift), self.refs(context, n_fake)
        return ctx_r, ctx_f, (torch.cat([ctx_r, ctx_f]) if self.paired else context)

    def generate(self, pg: Params, z: Tensor, context: Tensor) -> Tensor:
        """z (B, z_dim), context = the task's support set (K, *shape) -> (B, *shape).
        Unconditional models ignore the context."""
        return call_module(self.gen, pg, z, self.refs(context, z.shape[0]))

    def discriminate(self, pd: Params, x: Tensor, context: Tensor) -> Tensor:  # (B, *shape) -> (B,)
        return call_module(self.disc, pd, x, context)

    def d_loss(self, pd: Params, real: Tensor, fake: Tensor, eps: Tensor, context: Tensor,
               real_shift: int = 0, other: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Discriminator loss (main + penalties); real and fake go through D in one batch.
        Returns (loss, fake_logits) so a caller can reuse the fake logits for the generator loss.
        real_shift: which support image a paired model sees beside real sample i (see the module doc).
        other: images of another class (K', *shape); with loss.mismatch > 0 real sample i is also judged beside
        other[i mod K'] in the same batch, and D is taught to call that pair fake."""
        n_r, n_f = real.shape[0], fake.shape[0]
        ctx_r, ctx_f, ctx = self.d_contexts(context, n_r, n_f, real_shift)
        mismatch = other is not None and self.loss.mismatch > 0
        x = torch.cat([real, fake, real]) if mismatch else torch.cat([real, fake])
        if mismatch:
            ctx = torch.cat([ctx, self.refs(other, n_r)])
        logits = self.discriminate(pd, x, ctx)
        real_logits, fake_logits = logits[:n_r], logits[n_r:n_r + n_f]
        loss = self._d_main(real_logits, fake_logits)
        if mismatch:
            loss = loss + self.loss.mismatch * losses.FAKE_TERMS[self.loss.kind](logits[n_r + n_f:])
        if self.loss.kind == "wgan-gp":  # interpolates are judged beside the fakes' references
            disc = lambda x: self.discriminate(pd, x, ctx_f)  # noqa: E731
            loss = loss + self.loss.gp_weight * losses.gradient_penalty(disc, real, fake, eps)
        if self.loss.r1_gamma > 0:
            disc = lambda x: self.discriminate(pd, x, ctx_r)  # noqa: E731
            loss = loss + 0.5 * self.loss.r1_gamma * losses.r1_penalty(disc, real)
        return loss, fake_logits

    def g_loss(self, pg: Params, pd: Params, z: Tensor, context: Tensor) -> Tensor:
        """The generator's inner-loop loss: its adversarial loss against pd + its regulariser."""
        fake = self.generate(pg, z, context)
        logits = self.discriminate(pd, fake, self.refs(context, z.shape[0]))
        return self._g_main(logits) + self.g_extra(pg, fake, z, context)

    def g_extra(self, pg: Params, fake: Tensor, z: Tensor, context: Tensor) -> Tensor | float:
        """The generator's regulariser beside its adversarial loss: the diversity-sensitive term with z' = -z
        (another draw of the same Gaussian, never equal to z, so K = 1 works too) and the same references;
        0 when off. Costs one more generator forward."""
        if self.loss.diversity <= 0:
            return 0.0
        fake2 = self.generate(pg, -z, context)
        return self.loss.diversity * losses.diversity_term(fake, fake2, z, -z, self.loss.diversity_tau)

    def features(self, pd: Params, x: Tensor, context: Tensor) -> Tensor:
        """The discriminator's hidden features of a batch (B, *shape) -> (B, F), the layer its logit reads."""
        return call_module(self.disc, pd, x, context, features=True)

    def query_match(self, d_feat: Params, fake: Tensor, real: Tensor, support: Tensor, real_shift: int = 0):
        """MMD^2 between the generated and the real query images in the hidden features of the discriminator
        d_feat (held constant), each judged beside its reference as D judges it: the outer loss's measure of
        how far the adapted generator's samples are from the class's distribution (loss.outer_mmd)."""
        ctx_r, ctx_f, _ = self.d_contexts(support, real.shape[0], fake.shape[0], real_shift)
        return losses.mmd2(self.features(d_feat, fake, ctx_f), self.features(d_feat, real, ctx_r))

    def g_outer(self, pg: Params, fake: Tensor, fake_logits: Tensor, real: Tensor, support: Tensor,
                z: Tensor, d_feat: Params | None, real_shift: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's query loss: outer_adv x its adversarial loss + its regulariser
        [+ outer_mmd x query_match]; aux {"mmd": ...} when the match is on."""
        lg = self.loss.outer_adv * self._g_main(fake_logits) + self.g_extra(pg, fake, z, support)
        if self.loss.recon > 0:  # its noise: the query latents reversed (the task's noise stream is unchanged)
            lg = lg + self.recon_term(pg, real, support, z.flip(0), real_shift)
        if self.loss.outer_mmd <= 0 or d_feat is None:
            return lg, {}
        m = self.query_match(detach(d_feat), fake, real, support, real_shift)
        return lg + self.loss.outer_mmd * m, {"mmd": m.detach()}

    def recon_term(self, pg: Params, real: Tensor, support: Tensor, eps: Tensor, real_shift: int = 0) -> Tensor:
        """loss.recon's cVAE term (BicycleGAN's cVAE-GAN half): each real image's reference (as D pairs them) warped
        by z = mu + sigma eps, (mu, log sigma^2) = q(z | reference, image), onto the image: L1 of the two and of
        their blurs (a wider basin for thin strokes), + loss.recon_kl x KL(q || N(0, I)) summed over z. eps: one
        standard normal row per real image."""
        ref = self.refs(support, real.shape[0], real_shift)
        mu, logvar = call_module(self.gen, pg, None, ref, encode=real)
        rec = call_module(self.gen, pg, mu + torch.exp(0.5 * logvar) * eps, ref)
        l1 = (rec - real).abs().mean() + (losses.blur(rec) - losses.blur(real)).abs().mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return self.loss.recon * l1 + self.loss.recon_kl * kl

    def outer_losses(self, pg: Params, pd: Params, support: Tensor, query: Tensor, noise: dict[str, Tensor],
                     real_shift: int = 0, d_feat: Params | None = None):
        """Query losses (L_D, L_G) of adapted parameters from one generator forward; aux for logging.
        The support set stays the context (conditional models); the query supplies the real images.
        d_feat: the discriminator whose features measure loss.outer_mmd's match (meta-learners pass the
        meta-discriminator, the one that has seen every training class); None: no match term."""
        fake = self.generate(pg, noise["z_o"], support)
        ld, fake_logits = self.d_loss(pd, query, fake, noise["eps_o"], support, real_shift, noise.get("other"))
        lg, extra = self.g_outer(pg, fake, fake_logits, query, support, noise["z_o"], d_feat, real_shift)
        return (ld, lg), {"d_loss": ld.detach(), "g_loss": lg.detach(), **extra}

    def own_losses_sum(self, p: dict[str, Params], support: Tensor, query: Tensor, noise: dict[str, Tensor],
                       d_feat: Params | None = None):
        """L_D(pd; fake held constant) + L_G(pg; D held constant), aux as outer_losses.

        The gradient of this one scalar w.r.t. {"g": pg, "d": pd} is each player's gradient of its own query
        loss (what player_grads takes from outer_losses), from one backward pass that skips the generator
        for L_D and the discriminator's weights for L_G. Costs one extra D forward over the Q fakes."""
        fake = self.generate(p["g"], noise["z_o"], support)
        ld, _ = self.d_loss(p["d"], query, fake.detach(), noise["eps_o"], support, other=noise.get("other"))
        fake_logits = self.discriminate(detach(p["d"]), fake, self.refs(support, fake.shape[0]))
        lg, extra = self.g_outer(p["g"], fake, fake_logits, query, support, noise["z_o"], d_feat)
        return ld + lg, {"d_loss": ld.detach(), "g_loss": lg.detach(), **extra}

    def inner_loop(self, pg: Params, pd: Params, lr_g, lr_d, support: Tensor, noise: dict[str, Tensor],
                   sched: InnerSchedule, first_order: bool, record: list | None = None
                   ) -> tuple[Params, Params, dict[str, Tensor]]:
        """SGD on the task's support set: per step n_d discriminator then n_g generator updates.

        lr_g / lr_d map parameter names to floats (MAML) or tensors (Meta-SGD), or are lists of such maps, one per
        step (Meta-SGD with per-step rates; `rate_at`). With first_order the
        inner gradients are detached, so no outer transform differentiates through them.

        Paired models with one support image do not update D: its real pair would be the image beside itself,
        which teaches D that a copy of the reference is real (and so G to copy).

        record (first order only): a list that receives (player "g" or "d", step t, the detached gradient) for
        every update, in order (first-order Meta-SGD's rate gradients are read from them)."""
        def d_obj(pd_, fake, eps):
            loss, _ = self.d_loss(pd_, support, fake, eps, support, real_shift=1, other=noise.get("other"))
            return loss, loss

        def g_obj(pg_, pd_, z):
            loss = self.g_loss(pg_, pd_, z, support)
            return loss, loss

        stats = {}
        for t in range(sched.steps):
            for j in range(0 if self.paired and support.shape[0] == 1 else sched.n_d):
                fake = self.generate(pg, noise["z_d"][t, j], support)
                g, stats["inner_d"] = grad(d_obj, has_aux=True)(pd, fake, noise["eps_d"][t, j])
                pd = inner_update(pd, g, rate_at(lr_d, t), first_order, record, ("d", t))
            for j in range(sched.n_g):
                g, stats["inner_g"] = grad(g_obj, has_aux=True)(pg, pd, noise["z_g"][t, j])
                pg = inner_update(pg, g, rate_at(lr_g, t), first_order, record, ("g", t))
        return pg, pd, {k: v.detach() for k, v in stats.items()}


def call_module(module: nn.Module, params: Params, *args, **kwargs) -> Tensor:
    """module(*args, **kwargs) with the parameters `params` (all of them, by name): the module's `functional` where
    it defines one (the same function in plain tensor ops; metagan.models.conv), else `functional_call`, which
    swaps the parameters into the module around the call. The functional form skips that swap, a fixed cost per
    call that was 6-16% of a digits-demo meta-step (tens of calls per task and step under vmap)."""
    fn = getattr(module, "functional", None)
    return fn(params, *args, **kwargs) if fn is not None else functional_call(module, params, args, kwargs)


def other_classes(support: Tensor) -> Tensor:
    """noise["other"] of a meta-batch (loss.mismatch > 0): task b's other class is task b+1's support set
    (B, K, *shape); the task sampler draws distinct classes, so it is never b's own."""
    return support.roll(-1, 0)


def sample_noise(batch: int, sched: InnerSchedule, k: int, q: int, z_dim: int,
                 generator: torch.Generator, dtype=torch.float32) -> dict[str, Tensor]:
    """Noise for `batch` tasks (leading dim B), all drawn from `generator` in a fixed order."""
    T = sched.steps

    def normal(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    def uniform(*shape):
        return torch.rand(*shape, generator=generator, dtype=dtype)

    return {
        "z_d": normal(batch, T, sched.n_d, k, z_dim),
        "eps_d": uniform(batch, T, sched.n_d, k),
        "z_g": normal(batch, T, sched.n_g, k, z_dim),
        "z_o": normal(batch, q, z_dim),
        "eps_o": uniform(batch, q),
    }
