"""GAN objectives as pure functions of discriminator logits (and, for penalties, of a discriminator
function). All reduce with a mean over the batch and return a scalar.

Non-saturating (Goodfellow et al. 2014), with D(x) = sigmoid(logit):
    L_D = -E log D(x) - E log(1 - D(G(z))) = E softplus(-real) + E softplus(fake)
    L_G = -E log D(G(z))                   = E softplus(-fake)
WGAN-GP (Gulrajani et al. 2017):
    L_D = E D(G(z)) - E D(x) + lambda E (||grad_xhat D(xhat)||_2 - 1)^2,  xhat = eps x + (1 - eps) G(z),
    the norm taken per sample over all of its pixels;  L_G = -E D(G(z))
Hinge (Lim & Ye 2017):  L_D = E relu(1 - real) + E relu(1 + fake);  L_G = -E fake
R1 (Mescheder et al. 2018):  gamma/2 E ||grad_x D(x)||^2 on real samples.
Diversity-sensitive term (Yang et al. 2019, DSGAN), generator side: -w min(mean |G(z) - G(z')| / mean |z - z'|, tau)
for two latents with the same context; rewards samples that move with the noise, up to tau.
MMD^2 (Gretton et al. 2012; as a generator loss, Li et al. 2015): the unbiased estimate of the squared maximum
mean discrepancy between two samples under a sum of Gaussian kernels, whose bandwidths are fixed multiples of
the samples' mean squared pairwise distance (held constant for the gradient); 0 in expectation when the two
samples come from one distribution.
Matching-aware term (Reed et al. 2016), paired models: w * (fake half of L_D) on (real image, reference of
another class) pairs, e.g. w E softplus(D(x, ref')) for ns.

The penalties need input gradients of D. They are taken with `torch.func.grad` of the summed logits,
which gives per-sample gradients because our discriminators treat samples independently (no batch
statistics), and which composes with the outer `grad`/`vjp`/`vmap` transforms of the meta-learners.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import grad

DiscFn = Callable[[torch.Tensor], torch.Tensor]  # (B, ...) samples -> (B,) logits


def ns_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def ns_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()


def wgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()


def wgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def _input_grad(disc: DiscFn, x: torch.Tensor) -> torch.Tensor:
    """Per-sample gradient of D's logit w.r.t. its input: (B, ...) -> (B, ...)."""
    return grad(lambda inp: disc(inp).sum())(x)


def gradient_penalty(disc: DiscFn, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP term E (||grad D(xhat)|| - 1)^2, eps: (B,) mixing weights in [0, 1]."""
    e = eps.view(-1, *([1] * (real.dim() - 1)))
    xhat = e * real + (1.0 - e) * fake
    g = _input_grad(disc, xhat).flatten(1)  # (B, pixels)
    # sqrt(sum + tiny) keeps the gradient of the norm finite where it is 0.
    norm = torch.sqrt(g.pow(2).sum(1) + 1e-12)
    return (norm - 1.0).pow(2).mean()


def r1_penalty(disc: DiscFn, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 over real samples (multiply by gamma/2)."""
    return _input_grad(disc, real).flatten(1).pow(2).sum(1).mean()


def diversity_term(fake: torch.Tensor, fake2: torch.Tensor, z: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """-min(mean |fake - fake2| / mean |z - z2|, tau): the DSGAN term (multiply by its weight)."""
    return -torch.clamp((fake - fake2).abs().mean() / (z - z2).abs().mean(), max=tau)


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """A separable Gaussian blur (5 taps) of images (B, C, H, W), zero-padded from the background -1."""
    t = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    y = torch.nn.functional.conv2d(x + 1, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), padding=(2, 0), groups=c)
    return torch.nn.functional.conv2d(y, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), padding=(0, 2), groups=c) - 1


def mmd2(x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = (0.25, 1.0, 4.0)) -> torch.Tensor:
    """Unbiased MMD^2 (U-statistic) between samples x (n, d) and y (m, d), n, m >= 2, with the kernel
    sum_s exp(-|a - b|^2 / (s * bw)), bw = the mean squared distance over all pairs of [x; y] (detached)."""
    n, m = x.shape[0], y.shape[0]
    xy = torch.cat([x, y])
    sq = (xy.unsqueeze(1) - xy.unsqueeze(0)).pow(2).sum(-1)  # (n + m, n + m); cdist's gradient is NaN at 0
    bw = sq.detach().mean().clamp_min(1e-12)
    k = sum(torch.exp(-sq / (s * bw)) for s in scales)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    off = lambda a, c: (a.sum() - a.diagonal().sum()) / (c * (c - 1))  # noqa: E731  (mean off the diagonal)
    return off(kxx, n) + off(kyy, m) - 2 * kxy.mean()


def ns_fake_term(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake).mean()


def hinge_fake_term(fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 + fake).mean()


D_LOSSES = {"ns": ns_d_loss, "wgan-gp": wgan_d_loss, "hinge": hinge_d_loss}
# the fake half of a bounded D loss, for pairs D must call fake (the matching-aware term of paired models)
FAKE_TERMS = {"ns": ns_fake_term, "hinge": hinge_fake_term}
G_LOSSES = {"ns": ns_g_loss, "wgan-gp": wgan_g_loss, "hinge": hinge_g_loss}
