"""Convolutional generator and discriminator for square images whose side is a multiple of 4
(28x28 and 32x32 for Omniglot, 16x16 or 8x8 for the digits demo).

Generator:      z (B, z_dim) -> fc -> (2w, s/4, s/4) -> up, conv -> (w, s/2, s/2) -> up, conv -> (w, s, s)
                -> conv -> (C, s, s), tanh: images in [-1, 1].
Discriminator:  x (B, C, s, s) -> conv4 s2 -> (w, s/2) -> conv4 s2 -> (2w, s/4) -> fc -> (B,) logits.

Upsample-then-convolve avoids the checkerboard of transposed convolutions. Normalisation, when on, is
GroupNorm (per sample, no running statistics): samples never interact, which the per-sample gradient
penalty of WGAN-GP relies on.
"""
from __future__ import annotations

import torch
from torch import nn


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "layer":
        return nn.GroupNorm(1, ch)
    return nn.GroupNorm(min(8, ch), ch)


class ConvGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, size: int, width: int, norm: str = "none"):
        super().__init__()
        self.z_dim, self.channels, self.size = z_dim, channels, size
        self.s0 = size // 4
        w = width
        self.fc = nn.Linear(z_dim, 2 * w * self.s0 * self.s0)
        self.conv1 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.norm1 = _norm(norm, w)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.norm2 = _norm(norm, w)
        self.out = nn.Conv2d(w, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z_dim) -> (B, C, S, S)
        h = self.act(self.fc(z)).view(z.shape[0], -1, self.s0, self.s0)
        h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.act(self.norm1(self.conv1(h)))  # (B, w, S/2, S/2)
        h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.act(self.norm2(self.conv2(h)))  # (B, w, S, S)
        return torch.tanh(self.out(h))


class ConvDiscriminator(nn.Module):
    def __init__(self, channels: int, size: int, width: int):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(channels, w, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)
        self.fc = nn.Linear(2 * w * (size // 4) ** 2, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B,) logits
        h = self.act(self.conv1(x))  # (B, w, S/2, S/2)
        h = self.act(self.conv2(h))  # (B, 2w, S/4, S/4)
        return self.fc(h.flatten(1)).squeeze(-1)
