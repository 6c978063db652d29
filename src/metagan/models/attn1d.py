"""Attention generator and discriminator for series (C, L), L a multiple of PATCH, values in [-1, 1]:
`model.kind=attn1d`, the transformer counterpart of metagan.models.conv1d (same conditioning, same interface).

Tokens: the series cut into T = L / PATCH patches (a stride-PATCH conv1d: (B, C, L) -> (B, T, w)) plus a learned
position embedding, then DEPTH pre-norm blocks [LayerNorm, HEADS-head self-attention, LayerNorm, MLP w -> 2w -> w],
each with a residual connection. Attention is written with matmul and softmax (no fused kernel), so
functional_call, vmap over tasks and second-order meta-gradients run through it.

Generator (model.condition=none): z (B, z_dim) -> linear -> (B, T, w) + positions -> blocks -> a linear map of
                each token to its PATCH steps of C channels -> (B, C, L), tanh.
Pair (model.condition=series): each sample transforms one support series x_ref, as conv1d's PairSeriesGenerator:
                the tokens of x_ref plus a projection of z (added to every token) -> blocks -> per token a time
                displacement and a gain (tanh), upsampled linearly to L; x_ref resampled along the displacement
                (conv1d.warp) and multiplied by 1 + MAX_GAIN * gain. The field head is zero-initialised: the
                untrained generator returns its reference.
Discriminator:  x (B, C, L) (paired: stacked with x_ref on the channel axis) -> tokens -> blocks -> LayerNorm ->
                mean over tokens (B, w) (the features) -> linear -> (B,) logits.

No running statistics (LayerNorm only).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .conv1d import PairSeriesGenerator, warp_by_fields

PATCH = 4  # steps per token
HEADS = 4  # attention heads: the widths must be multiples of it
DEPTH = 2  # transformer blocks in each network


class SelfAttention(nn.Module):
    """Multi-head self-attention: (B, T, w) -> (B, T, w)."""

    def __init__(self, width: int, heads: int = HEADS):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        d = w // self.heads
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)  # each (B, heads, T, d)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)  # (B, heads, T, T)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, w))


class Block(nn.Module):
    """Pre-norm transformer block: (B, T, w) -> (B, T, w)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Trunk(nn.Module):
    """Position embedding, DEPTH blocks and a final LayerNorm over T tokens of width w: (B, T, w) -> (B, T, w)."""

    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(DEPTH)))
        self.norm = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(h + self.pos))


def _tokens(embed: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    return embed(x).transpose(1, 2)  # (B, C, L) -> (B, T, w)


class AttnGenerator(nn.Module):
    """z (B, z_dim) -> (B, C, L) in [-1, 1]; unconditional (context ignored)."""

    def __init__(self, z_dim: int, channels: int, length: int, width: int):
        super().__init__()
        self.z_dim, self.channels, self.length = z_dim, channels, length
        self.tokens, self.width = length // PATCH, width
        self.fc = nn.Linear(z_dim, self.tokens * width)
        self.trunk = Trunk(self.tokens, width)
        self.out = nn.Linear(width, channels * PATCH)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b = z.shape[0]
        h = self.trunk(self.fc(z).reshape(b, self.tokens, self.width))  # (B, T, w)
        x = self.out(h).reshape(b, self.tokens, self.channels, PATCH).permute(0, 2, 1, 3)  # (B, C, T, PATCH)
        return torch.tanh(x.reshape(b, self.channels, self.length))


class PairAttnGenerator(nn.Module):
    """z (B, z_dim), x_ref (B, C, L) -> (B, C, L): the reference time-warped and rescaled (see the module doc)."""

    paired = True
    MAX_SHIFT = PairSeriesGenerator.MAX_SHIFT
    MAX_GAIN = PairSeriesGenerator.MAX_GAIN

    def __init__(self, z_dim: int, channels: int, length: int, width: int):
        super().__init__()
        self.z_dim, self.channels, self.length = z_dim, channels, length
        self.embed = nn.Conv1d(channels, width, PATCH, stride=PATCH)
        self.zproj = nn.Linear(z_dim, width)
        self.trunk = Trunk(length // PATCH, width)
        self.fields = nn.Linear(width, 2)  # (shift, gain) per token
        nn.init.zeros_(self.fields.weight)
        nn.init.zeros_(self.fields.bias)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.trunk(_tokens(self.embed, context) + self.zproj(z)[:, None])  # (B, T, w)
        return warp_by_fields(context, self.fields(h).transpose(1, 2))  # fields (B, 2, T)


class AttnDiscriminator(nn.Module):
    def __init__(self, channels: int, length: int, width: int, paired: bool = False):
        super().__init__()
        self.paired = paired
        self.embed = nn.Conv1d(2 * channels if paired else channels, width, PATCH, stride=PATCH)
        self.trunk = Trunk(length // PATCH, width)
        self.fc = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, features: bool = False) -> torch.Tensor:
        # x (B, C, L), paired: references (B, C, L) (unpaired: context ignored) -> (B,) logits, or with
        # features=True the token-averaged features the logit is read from (B, w)
        h = self.trunk(_tokens(self.embed, torch.cat([x, context], 1) if self.paired else x)).mean(1)  # (B, w)
        return h if features else self.fc(h).squeeze(-1)
