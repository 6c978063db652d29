"""The morph generator (model.condition=morph): a sample is one support image warped part of the way towards
the class's other support images, plus the warp generator's own z-driven variation.

Different drawings of one class differ by how their strokes are placed and bent. A registration network
reads a pair (reference, other support image) and predicts the smooth displacement field that carries the
reference onto the other drawing; it is trained by a self-supervised loss (`registration_loss`: the warped
reference against the other image, compared blurred at three scales, so thin strokes that do not overlap
still pull towards each other). A sample with reference x_i then follows

    alpha * sum_j pi_j flow(x_i -> x_j)  +  the warp generator's field and affine map from z,

a random point between the reference and the other drawings (pi ~ Dirichlet(1, ..., 1) over the K-1 others,
alpha ~ U(0, alpha_max)), both read from z so that a sample stays a pure function of (parameters, z,
support): -log Phi(z_j) is an Exp(1) draw, and Phi(z_0) a uniform one (Phi: the standard normal CDF). With
K = 1 there is nothing to morph towards and it is the warp generator. Every sample therefore carries
information from all K supports, and more supports span more of the class's variation.

Context: the generator reads the whole support set (K, C, s, s); sample i's reference is support image i mod K,
as `GanProblem.refs` pairs them for the discriminator, which judges (sample, reference) pairs as for the warp
generator.

Example:
    >>> import torch
    >>> g = MorphGenerator(8, 1, 8, 4)
    >>> g(torch.randn(3, 8), torch.zeros(2, 1, 8, 8)).shape
    torch.Size([3, 1, 8, 8])
"""
from __future__ import annotations

import torch
from torch import nn

from .conv import PairGenerator, _norm, upsample_conv


class MorphGenerator(PairGenerator):
    """z (B, z_dim), the support set (K, C, s, s) -> (B, C, s, s)."""

    reads_set = True
    MAX_REG = 0.5  # a registration displacement reaches a quarter of the image width

    def __init__(self, z_dim: int, channels: int, size: int, width: int, norm: str = "none", affine: float = 0.0,
                 alpha_max: float = 1.0):
        super().__init__(z_dim, channels, size, width, norm, affine)
        w = width
        self.alpha_max = alpha_max
        self.reg1 = nn.Conv2d(2 * channels, w, 4, stride=2, padding=1)  # (w, s/2)
        self.reg2 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)  # (2w, s/4)
        self.reg3 = nn.Conv2d(2 * w, w, 3, padding=1)  # upsampled to (w, s/2)
        self.reg_norm = _norm(norm, w)
        self.reg_flow = nn.Conv2d(w, 2, 3, padding=1)
        nn.init.zeros_(self.reg_flow.weight)  # zero-initialised: registration starts as the identity
        nn.init.zeros_(self.reg_flow.bias)

    def register(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Displacement fields carrying x onto target: (N, C, s, s) twice -> (N, 2, s/2, s/2)."""
        h = self.act(self.reg1(torch.cat([x, target], 1)))  # (N, w, s/2)
        h = self.act(self.reg2(h))  # (N, 2w, s/4)
        h = self.act(self.reg_norm(upsample_conv(h, self.reg3)))  # (N, w, s/2)
        return torch.tanh(self.reg_flow(h)) * self.MAX_REG

    def morph_field(self, z: torch.Tensor, support: torch.Tensor) -> torch.Tensor | None:
        """The morph part of each sample's displacement: (B, 2, s/2, s/2), or None with K = 1. Sample i's
        reference is support image i mod K; each of the K (K-1) ordered pairs is registered once."""
        b, k = z.shape[0], support.shape[0]
        if k == 1:
            return None
        i = torch.arange(k, device=z.device)
        others = (i[:, None] + torch.arange(1, k, device=z.device)) % k  # (K, K-1): the others of reference i
        flows = self.register(support.repeat_interleave(k - 1, 0), support[others.flatten()])  # (K (K-1), 2, h, w)
        flows = flows.view(k, k - 1, *flows.shape[1:])[torch.arange(b, device=z.device) % k]  # (B, K-1, 2, h, w)
        cols = (torch.arange(k - 1, device=z.device) % (self.z_dim - 1)) + 1
        e = -torch.log(torch.special.ndtr(z[:, cols]).clamp_min(1e-12))  # (B, K-1) Exp(1) draws
        pi = e / e.sum(1, keepdim=True)  # Dirichlet(1, ..., 1)
        alpha = torch.special.ndtr(z[:, 0]) * self.alpha_max  # (B,) U(0, alpha_max)
        return (alpha[:, None] * pi)[:, :, None, None, None].mul(flows).sum(1)

    def forward(self, z: torch.Tensor | None, context: torch.Tensor, registration: bool = False) -> torch.Tensor:
        """z (B, z_dim), context = the support set (K, C, s, s) -> (B, C, s, s); sample i transforms support
        image i mod K. registration=True: `registration_loss(context)` instead (z unused), so that
        `functional_call` reaches it."""
        if registration:
            return self.registration_loss(context)
        ref = context[torch.arange(z.shape[0], device=z.device) % context.shape[0]]  # (B, C, s, s)
        flow, theta = self.fields(z, ref)
        morph = self.morph_field(z, context)
        return self._resample(ref, flow if morph is None else flow + morph, theta)

    def registration_loss(self, support: torch.Tensor) -> torch.Tensor:
        """How far the registration is from carrying each support image onto the next: (K, C, s, s) -> ()
        mean absolute difference of the warped image and its target, at full, half and quarter resolution
        (average-pooled, so strokes that do not overlap still pull towards each other). 0 with K = 1."""
        if support.shape[0] < 2:
            return support.new_zeros(())
        target = support.roll(-1, 0)
        warped = self._resample(support, self.register(support, target))
        loss = support.new_zeros(())
        for f in (1, 2, 4):
            a, b = (warped, target) if f == 1 else (nn.functional.avg_pool2d(warped, f),
                                                    nn.functional.avg_pool2d(target, f))
            loss = loss + (a - b).abs().mean()
        return loss / 3
