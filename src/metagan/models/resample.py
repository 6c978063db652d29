"""Bilinear resampling of images at arbitrary points, differentiable to any order under `torch.func.vmap`.

`resample(x, grid)` is `torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
align_corners=False)`, the same function to float rounding, built from padding, a gather and arithmetic: each
output value is the weighted sum of the four pixels around its point, read from the image padded by two zero
pixels on every side, with the top-left corner clamped into that border so that a corner outside the image
reads a zero. metagan.models.conv1d's `warp` is the 1-D analogue. At a point exactly on a pixel row or column,
where bilinear interpolation has a kink, the derivatives are those of the cell whose top-left corner is the
floor of the point, the coordinate rounded as torch's CPU kernel rounds it: first derivatives equal
grid_sample's everywhere, second derivatives away from kinks (at a kink grid_sample's double backward rounds
the coordinate its own way and can take the other cell; `resample`'s are the derivatives of its first).

Why two ways: grid_sample's double backward is an in-place kernel that vmap refuses, so second-order
meta-gradients through the warp generator cannot be vectorised over tasks with it, while these ops
have batching rules at every order. But torch's fused kernel is much faster where it can run (on the CPU at
28x28, batch 5-80, one thread: forward 16-32x, forward and backward 4-7x; with a double backward `resample`
takes 0.8-1.1x grid_sample's time; an eager adaptation of a shipped model took 11% more CPU time with it). So
the generators call `bilinear`, which is grid_sample unless the caller is inside `any_order_resampling()`, as
`meta_gradients` is for second-order learners, vmapped or not: one resampler gives both ways the same
meta-gradient, also from an untrained warp, whose identity grid puts every point on a kink.

    >>> import torch
    >>> x = torch.arange(4.0).view(1, 1, 2, 2)
    >>> resample(x, torch.tensor([[[[0.0, 0.0]]]]))  # the centre: the mean of the four pixels
    tensor([[[[1.5000]]]])
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
from torch.nn import functional as F

_ANY_ORDER: contextvars.ContextVar[bool] = contextvars.ContextVar("metagan_any_order_resampling", default=False)


@contextlib.contextmanager
def any_order_resampling(on: bool = True) -> Iterator[None]:
    """Within the block (on=True), `bilinear` computes `resample`: differentiable to any order under vmap."""
    token = _ANY_ORDER.set(on)
    try:
        yield
    finally:
        _ANY_ORDER.reset(token)


def bilinear(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) read at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo): grid_sample (bilinear, zero padding,
    align_corners=False), computed by `resample` inside `any_order_resampling()` and by torch's kernel elsewhere."""
    if _ANY_ORDER.get():
        return resample(x, grid)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) read at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo).

    grid[..., 0] is the horizontal and grid[..., 1] the vertical coordinate in [-1, 1] across the image's outer
    pixel edges (align_corners=False: pixel j's centre is at (2 j + 1) / W - 1); points outside read zeros."""
    n, c, h, w = x.shape
    ho, wo = grid.shape[1:3]
    p = ho * wo
    g = grid.reshape(n, p, 2).transpose(1, 2).contiguous()  # (N, 2 = (x, y), P)
    scale = torch.tensor([w / 2, h / 2], dtype=g.dtype, device=g.device).view(1, 2, 1)
    # (N, 2, P) in pixels, 0 .. w-1 at the centres, rounded as torch's CPU kernel rounds it: a point on a pixel
    # row or column (every point of an identity warp) then falls in the same cell, with the same derivatives
    pix = (g + 1) * scale - 0.5
    # The top-left corner; its index carries no gradient. Clamped to [-2, w] (and [-2, h]): a point beyond reads
    # four corners in the zero border of width 2 whatever its weights, and the integer conversion cannot overflow
    # (a NaN point reads the border too, and its NaN weights make the output NaN, as a diverged run should).
    corner = torch.minimum(pix.detach().nan_to_num(-2.0).floor().clamp_min(-2), 2 * scale)  # 2 * scale = (w, h)
    frac = pix - corner  # (N, 2, P): the weights of the right and lower neighbours
    stride = w + 4  # a row of the padded image
    col, row = (corner + 2).long().unbind(1)  # integers: a half-precision grid cannot round the flat index
    top_left = row * stride + col  # (N, P): the flat index in the padded image
    offsets = torch.tensor([0, 1, stride, stride + 1], device=x.device).view(1, 4, 1)  # (top, bottom) x (left, right)
    index = (top_left[:, None] + offsets).view(n, 1, 4 * p)
    padded = F.pad(x, (2, 2, 2, 2)).reshape(n, c, (h + 4) * stride)
    corners = torch.gather(padded, 2, index.expand(n, c, -1)).view(n, c, 4, p)
    both = torch.stack([1 - frac, frac], 1)  # (N, 2 = (this, next), 2 = (x, y), P)
    weights = (both[:, :, None, 1] * both[:, None, :, 0]).view(n, 1, 4, p)  # (y0, y1) x (x0, x1)
    return (corners * weights).sum(2).view(n, c, ho, wo)
