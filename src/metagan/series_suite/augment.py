"""Classic time-series augmentation, in torch with an explicit generator: the baseline metagan's series are
compared with, and the low-data classifier's "augmentation" arm.

The five transforms of Um et al. (2017) and Le Guennec et al. (2016), with their usual strengths, on x (N, C, L)
in model space:

- jitter: + Gaussian noise, sigma = 0.03 x each series' own standard deviation per channel;
- scaling: x one factor per series and channel, N(1, 0.1);
- magnitude warping: x a smooth curve through 4 interior knots ~ N(1, 0.2) (cubic interpolation);
- time warping: resampled along a smooth warp of the time axis whose speed passes through 4 knots ~ N(1, 0.2);
- window slicing: a window of 90% of the length at a random start, stretched back to L.

`classic_augment` applies each transform of a set (default: all five) to each series with probability 0.5, in
that order (time, then magnitude), and clips to [-1, 1] (the series' model space). Every random draw comes from
the generator passed in, and for a given set the same number of draws is made whichever transforms are picked, so
a stream is reproducible. The pigcvp benchmark uses magnitude warping and scaling, the set that helped its
low-data classifier most on the training pigs (docs/series-results.md).

Why not tsaug: it imports under numpy 2, but it has no scaling or magnitude warping, and its randomness is a
seed per augmenter object rather than a stream shared with the rest of the protocol.

Example:
    >>> import torch
    >>> x = torch.sin(torch.linspace(0, 6.28, 64)).repeat(8, 1, 1)       # (8, 1, 64)
    >>> y = classic_augment(x, torch.Generator().manual_seed(0))
    >>> tuple(y.shape), bool(y.abs().max() <= 1)
    ((8, 1, 64), True)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

JITTER = 0.03  # noise sigma, as a share of the series' standard deviation
SCALE = 0.1  # sigma of the scaling factor around 1
MAGNITUDE = 0.2  # sigma of the magnitude-warping knots around 1
TIME = 0.2  # sigma of the time-warping speed knots around 1
KNOTS = 4  # interior knots of both warps
WINDOW = 0.9  # window slicing keeps this share of the length
PROBABILITY = 0.5  # classic_augment: chance that each transform is applied to a series


def _smooth_curve(n: int, length: int, sigma: float, generator: torch.Generator, knots: int = KNOTS) -> Tensor:
    """(n, length) smooth random curves around 1: knots + 2 values ~ N(1, sigma) at evenly spaced points
    (ends included), interpolated with the cubic convolution kernel."""
    values = 1 + sigma * torch.randn(n, 1, 1, knots + 2, generator=generator)
    return F.interpolate(values, size=(1, length), mode="bicubic", align_corners=True)[:, 0, 0]


def _resample(x: Tensor, positions: Tensor) -> Tensor:
    """x (N, C, L) read at fractional positions (N, M) in [0, L - 1], by linear interpolation -> (N, C, M)."""
    length = x.shape[-1]
    positions = positions.clamp(0, length - 1)
    lo = positions.floor().long().clamp(max=length - 2) if length > 1 else positions.floor().long()
    frac = (positions - lo).unsqueeze(1)  # (N, 1, M)
    hi = (lo + 1).clamp(max=length - 1)
    index = lambda i: i.unsqueeze(1).expand(-1, x.shape[1], -1)  # noqa: E731 - (N, C, M)
    return x.gather(2, index(lo)) * (1 - frac) + x.gather(2, index(hi)) * frac


def jitter(x: Tensor, generator: torch.Generator, sigma: float = JITTER) -> Tensor:
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * x.std(-1, keepdim=True) * noise


def scaling(x: Tensor, generator: torch.Generator, sigma: float = SCALE) -> Tensor:
    return x * (1 + sigma * torch.randn(x.shape[0], x.shape[1], 1, generator=generator, dtype=x.dtype))


def magnitude_warp(x: Tensor, generator: torch.Generator, sigma: float = MAGNITUDE) -> Tensor:
    n, c, length = x.shape
    return x * _smooth_curve(n * c, length, sigma, generator).view(n, c, length).to(x.dtype)


def time_warp(x: Tensor, generator: torch.Generator, sigma: float = TIME) -> Tensor:
    """All channels of a series share one warp: its speed curve, clamped above 0.1, integrated to positions that
    run from 0 to L - 1."""
    n, _, length = x.shape
    speed = _smooth_curve(n, length, sigma, generator).clamp_min(0.1)
    t = torch.cumsum(speed, 1) - speed[:, :1]
    t = t / t[:, -1:].clamp_min(1e-8) * (length - 1)
    return _resample(x, t.to(x.dtype))


def window_slice(x: Tensor, generator: torch.Generator, ratio: float = WINDOW) -> Tensor:
    n, _, length = x.shape
    width = max(2, round(ratio * length))
    start = torch.rand(n, 1, generator=generator, dtype=torch.float64) * (length - width)
    t = start + torch.linspace(0, width - 1, length, dtype=torch.float64)[None]
    return _resample(x, t.to(x.dtype))


TRANSFORMS = (("time_warp", time_warp), ("window_slice", window_slice), ("magnitude_warp", magnitude_warp),
              ("scaling", scaling), ("jitter", jitter))
ALL = tuple(name for name, _ in TRANSFORMS)


def _transforms(names) -> list:
    unknown = set(names) - set(ALL)
    if unknown:
        raise ValueError(f"unknown transforms {sorted(unknown)}; the transforms are: {', '.join(ALL)}")
    return [(name, f) for name, f in TRANSFORMS if name in names]


def classic_augment(x: Tensor, generator: torch.Generator, probability: float = PROBABILITY,
                    transforms=ALL) -> Tensor:
    """x (N, C, L) -> (N, C, L): each transform named in `transforms` (in TRANSFORMS' order) applied to each series
    with `probability`, then clipped to [-1, 1]."""
    x = x.float()
    for _, transform in _transforms(transforms):
        pick = (torch.rand(len(x), generator=generator) < probability).view(-1, 1, 1)
        x = torch.where(pick, transform(x, generator), x)
    return x.clamp(-1.0, 1.0)


def augmentation(transforms=ALL, probability: float = PROBABILITY):
    """classic_augment with a fixed set: augment(x, generator) -> x augmented (a low-data classifier's kit)."""
    _transforms(transforms)
    return lambda x, generator: classic_augment(x, generator, probability, transforms)


def augmenter(probability: float = PROBABILITY, transforms=ALL):
    """The `augmentation` method as a few-shot generator: n series, each a randomly chosen support series under
    classic_augment."""
    augment = augmentation(transforms, probability)

    def gen(support: Tensor, n: int, generator: torch.Generator) -> Tensor:
        pick = torch.randint(len(support), (n,), generator=generator)
        return augment(support[pick], generator)
    return gen
