"""1-D convolutional generator and discriminator for series (C, L), L a multiple of 4, values in [-1, 1].

Generator (model.condition=none):
                z (B, z_dim) -> fc -> (2w, L/4) -> up, conv5 -> (w, L/2) -> up, conv5 -> (w, L) -> conv5 -> (C, L),
                tanh: series in [-1, 1] (the model space of metagan.data.series).
Discriminator:  x (B, C, L) -> conv4 s2 -> (w, L/2) -> conv4 s2 -> (2w, L/4) -> fc -> (B,) logits.

Pair conditioning (model.condition=series), the 1-D form of the image models' warp: each sample transforms one
support series x_ref. `PairSeriesGenerator` encodes x_ref to (w, L/2) and (2w, L/4), joins z at L/4, and
decodes to two smooth fields at L/2, upsampled linearly to L: a time displacement (tanh-bounded to MAX_SHIFT of
the length) along which x_ref is resampled, and a magnitude factor 1 + MAX_GAIN tanh(.) that multiplies it. That
is time warping and magnitude warping, the classic series augmentations, with a distribution the GAN learns.
Zero-initialised: the untrained generator returns its reference. The discriminator judges (x, x_ref) pairs
stacked on the channel axis, as for images (metagan.meta.problem: `refs`).

No running statistics (GroupNorm when model.norm is on), so functional_call and vmap over tasks work. The warp
resamples by gathering the two neighbouring steps (not grid_sample), so second-order meta-gradients run under
vmap too.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .conv import _norm


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")  # (B, c, n) -> (B, c, 2n)


class Conv1dGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, length: int, width: int, norm: str = "none"):
        super().__init__()
        self.z_dim, self.channels, self.length = z_dim, channels, length
        self.l0, w = length // 4, width
        self.fc = nn.Linear(z_dim, 2 * w * self.l0)
        self.conv1 = nn.Conv1d(2 * w, w, 5, padding=2)
        self.norm1 = _norm(norm, w)
        self.conv2 = nn.Conv1d(w, w, 5, padding=2)
        self.norm2 = _norm(norm, w)
        self.out = nn.Conv1d(w, channels, 5, padding=2)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # z (B, z_dim) -> (B, C, L); unconditional: context is ignored
        h = self.act(self.fc(z)).view(z.shape[0], -1, self.l0)  # (B, 2w, L/4)
        h = self.act(self.norm1(self.conv1(_up(h))))  # (B, w, L/2)
        h = self.act(self.norm2(self.conv2(_up(h))))  # (B, w, L)
        return torch.tanh(self.out(h))


class PairSeriesGenerator(nn.Module):
    """z (B, z_dim), x_ref (B, C, L) -> (B, C, L): the reference time-warped and rescaled (see the module doc)."""

    paired = True
    MAX_SHIFT = 0.1  # the largest time displacement, as a fraction of the length
    MAX_GAIN = 0.5  # the magnitude factor stays in [0.5, 1.5]

    def __init__(self, z_dim: int, channels: int, length: int, width: int, norm: str = "none"):
        super().__init__()
        self.z_dim, self.channels, self.length = z_dim, channels, length
        self.l0, w = length // 4, width
        self.enc1 = nn.Conv1d(channels, w, 4, stride=2, padding=1)  # (w, L/2)
        self.enc2 = nn.Conv1d(w, 2 * w, 4, stride=2, padding=1)  # (2w, L/4)
        self.fc = nn.Linear(z_dim, 2 * w * self.l0)
        self.conv1 = nn.Conv1d(4 * w, w, 5, padding=2)
        self.norm1 = _norm(norm, w)
        self.fields = nn.Conv1d(w, 2, 5, padding=2)  # (shift, gain) at L/2
        nn.init.zeros_(self.fields.weight)
        nn.init.zeros_(self.fields.bias)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        e = self.act(self.enc2(self.act(self.enc1(context))))  # (B, 2w, L/4)
        h = self.act(self.fc(z)).view(z.shape[0], -1, self.l0)  # (B, 2w, L/4)
        h = self.act(self.norm1(self.conv1(_up(torch.cat([h, e], 1)))))  # (B, w, L/2)
        return warp_by_fields(context, self.fields(h))


def warp_by_fields(context: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
    """The pair generators' output: context (B, C, L) resampled in time and rescaled by two fields (B, 2, T) at any
    resolution T (tanh-bounded, upsampled linearly to L): a time shift of at most MAX_SHIFT of the length and a
    gain in [1 - MAX_GAIN, 1 + MAX_GAIN] -> (B, C, L)."""
    length = context.shape[-1]
    f = F.interpolate(torch.tanh(fields), size=length, mode="linear", align_corners=False)  # (B, 2, L)
    shift = f[:, :1] * (PairSeriesGenerator.MAX_SHIFT * (length - 1))  # (B, 1, L), in steps
    return warp(context, shift) * (1.0 + PairSeriesGenerator.MAX_GAIN * f[:, 1:])


def warp(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x (B, C, L), L >= 2, read at steps t + shift (B, 1, L), linearly interpolated between the two neighbouring
    steps -> (B, C, L). A position past an end is reflected back into the series (step -1 reads step 1, step L reads
    step L - 2), once, then clamped: holding the end value instead drew flat tails a discriminator tells apart."""
    n = x.shape[-1]
    pos = torch.arange(n, dtype=x.dtype, device=x.device) + shift  # (B, 1, L)
    pos = torch.where(pos < 0, -pos, pos)
    pos = torch.where(pos > n - 1, 2 * (n - 1) - pos, pos).clamp(0, n - 1)
    i0 = pos.detach().floor().clamp(max=n - 2).long()  # the left neighbour; its index carries no gradient
    frac = pos - i0.to(x.dtype)
    i0 = i0.expand(-1, x.shape[1], -1)
    return torch.gather(x, 2, i0) * (1 - frac) + torch.gather(x, 2, i0 + 1) * frac


class Conv1dDiscriminator(nn.Module):
    def __init__(self, channels: int, length: int, width: int, paired: bool = False):
        super().__init__()
        w = width
        self.paired = paired
        self.conv1 = nn.Conv1d(2 * channels if paired else channels, w, 4, stride=2, padding=1)
        self.conv2 = nn.Conv1d(w, 2 * w, 4, stride=2, padding=1)
        self.fc = nn.Linear(2 * w * (length // 4), 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, features: bool = False) -> torch.Tensor:
        # x (B, C, L), paired: references (B, C, L) (unpaired: context ignored) -> (B,) logits, or with
        # features=True the hidden features the logit is read from (B, 2w * L/4)
        h = self.act(self.conv1(torch.cat([x, context], 1) if self.paired else x))  # (B, w, L/2)
        h = self.act(self.conv2(h)).flatten(1)  # (B, 2w * L/4)
        return h if features else self.fc(h).squeeze(-1)
