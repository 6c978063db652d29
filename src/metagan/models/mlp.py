"""MLP generator and discriminator for vectors (or flattened images): samples of any `shape`.

Generator: z (B, z_dim) -> hidden -> hidden -> prod(shape), tanh, reshaped to (B, *shape).
Discriminator: (B, *shape) -> flatten -> hidden -> hidden -> (B,) logits.
Data are expected in [-1, 1], like images.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, shape: tuple[int, ...], hidden: int):
        super().__init__()
        self.z_dim, self.shape = z_dim, tuple(shape)
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, math.prod(self.shape)), nn.Tanh())

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # (B, z_dim) -> (B, *shape); unconditional: context is ignored
        return self.net(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, shape: tuple[int, ...], hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(math.prod(shape), hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, features: bool = False) -> torch.Tensor:
        # (B, *shape) -> (B,) logits, or with features=True the last hidden layer (B, hidden); unconditional:
        # context is ignored
        h = self.net[:-1](x.flatten(1))
        return h if features else self.net[-1](h).squeeze(-1)
