"""Bilinear and bicubic resampling of images at arbitrary points, differentiable to any order under
`torch.func.vmap`.

`resample(x, grid, mode)` is `torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="zeros",
align_corners=False)`, the same function to float rounding, built from padding, a gather and arithmetic: each
output value is the weighted sum of the 2 x 2 (bilinear) or 4 x 4 (bicubic, Keys' kernel) pixels around its
point, read from the image padded by zeros on every side, with the cell's corner clamped into that border so
that a point far outside the image reads zeros. metagan.models.conv1d's `warp` is the 1-D analogue. At a point exactly on a pixel row or column,
where bilinear interpolation has a kink, the derivatives are those of the cell whose top-left corner is the
floor of the point, the coordinate rounded as torch's CPU kernel rounds it: first derivatives equal
grid_sample's everywhere, second derivatives away from kinks (at a kink grid_sample's double backward rounds
the coordinate its own way and can take the other cell; `resample`'s are the derivatives of its first).

Why two ways: grid_sample's double backward is an in-place kernel that vmap refuses, so second-order
meta-gradients through the warp generator cannot be vectorised over tasks with it, while these ops
have batching rules at every order. But torch's fused kernel is much faster where it can run (on the CPU at
28x28, batch 5-80, one thread: forward 16-32x, forward and backward 4-7x; with a double backward `resample`
takes 0.8-1.1x grid_sample's time; an eager adaptation of a shipped model took 11% more CPU time with it). So
the generators call `sample`, which is grid_sample unless the caller is inside `any_order_resampling()`, as
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
    """Within the block (on=True), `sample` computes `resample`: differentiable to any order under vmap."""
    token = _ANY_ORDER.set(on)
    try:
        yield
    finally:
        _ANY_ORDER.reset(token)


def sample(x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """x (N, C, H, W) read at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo): grid_sample (`mode` bilinear or bicubic, zero
    padding, align_corners=False), computed by `resample` inside `any_order_resampling()` and by torch's kernel
    elsewhere."""
    if _ANY_ORDER.get():
        return resample(x, grid, mode)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


CUBIC_A = -0.75  # torch's (and OpenCV's) cubic convolution coefficient


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution weights of the four taps at -1, 0, 1, 2 around a point t in [0, 1) past tap 0:
    (...) -> (..., 4) stacked on a new dimension 1 when t is (N, 2, P): (N, 4, 2, P)."""
    a = CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], 1)


def resample(x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """x (N, C, H, W) read at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo), as grid_sample with `mode` bilinear (the 2 x 2
    pixels around each point) or bicubic (4 x 4, Keys' kernel with a = -0.75, as torch's).

    grid[..., 0] is the horizontal and grid[..., 1] the vertical coordinate in [-1, 1] across the image's outer
    pixel edges (align_corners=False: pixel j's centre is at (2 j + 1) / W - 1); points outside read zeros."""
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"resample mode must be bilinear or bicubic, got {mode!r}")
    taps, first, pad = (2, 0, 2) if mode == "bilinear" else (4, -1, 4)  # taps per axis from corner + first
    n, c, h, w = x.shape
    ho, wo = grid.shape[1:3]
    p = ho * wo
    g = grid.reshape(n, p, 2).transpose(1, 2).contiguous()  # (N, 2 = (x, y), P)
    scale = torch.tensor([w / 2, h / 2], dtype=g.dtype, device=g.device).view(1, 2, 1)
    # (N, 2, P) in pixels, 0 .. w-1 at the centres, rounded as torch's CPU kernel rounds it: a point on a pixel
    # row or column (every point of an identity warp) then falls in the same cell, with the same derivatives
    pix = (g + 1) * scale - 0.5
    # The cell's top-left corner; its index carries no gradient. Clamped to [-pad - first, w - first] (and h): a point
    # beyond reads every tap in the zero border of width `pad` whatever its weights, and the integer conversion
    # cannot overflow (a NaN point reads the border too, and its NaN weights make the output NaN, as a diverged
    # run should).
    lo = -pad - first
    corner = torch.minimum(pix.detach().nan_to_num(float(lo)).floor().clamp_min(lo), 2 * scale - first)
    frac = pix - corner  # (N, 2, P): how far past the corner
    stride = w + 2 * pad  # a row of the padded image
    col, row = (corner + pad + first).long().unbind(1)  # the first tap; integers, so a half-precision grid cannot
    top_left = row * stride + col  # (N, P)           round the flat index
    ar = torch.arange(taps, device=x.device)
    offsets = (ar[:, None] * stride + ar[None, :]).view(1, taps * taps, 1)  # rows (y) outer, columns (x) inner
    index = (top_left[:, None] + offsets).view(n, 1, taps * taps * p)
    padded = F.pad(x, (pad, pad, pad, pad)).reshape(n, c, (h + 2 * pad) * stride)
    values = torch.gather(padded, 2, index.expand(n, c, -1)).view(n, c, taps * taps, p)
    per_axis = torch.stack([1 - frac, frac], 1) if taps == 2 else _cubic_weights(frac)  # (N, taps, 2 = (x, y), P)
    weights = (per_axis[:, :, None, 1] * per_axis[:, None, :, 0]).reshape(n, 1, taps * taps, p)
    return (values * weights).sum(2).view(n, c, ho, wo)
