"""Per-class few-shot metrics in feature space (features (n, D) per class).

- class_fidelity: share of generated samples that an N-way prototypical classifier, built from the K
  real support examples of each of N classes, assigns to the intended class.
- diversity: mean pairwise distance of a class's generated samples over that of its real images
  (1.0 = as varied as real data; near 0 = mode collapse).
- copy_ratio: for each generated sample, distance to the nearest of its own support images over the
  distance to the nearest other real image of the class, averaged. Real non-support images score about
  1; a generator that returns its inputs scores near 0.
"""
from __future__ import annotations

import torch


def distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact pairwise Euclidean distances (a (N, D), b (M, D)) -> (N, M), in float64.

    torch.cdist's default matrix-product shortcut can return NaN for identical points (the square root
    of a tiny negative number), which is exactly what a collapsed generator produces."""
    return torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist")


def class_fidelity(fake: list[torch.Tensor], support: list[torch.Tensor]) -> float:
    """fake[c] (M_c, D) generated for class c; support[c] (K, D). N = len(support) classes.
    Share of the fakes whose nearest prototype is their own class; non-finite fakes count as misses."""
    protos = torch.stack([s.mean(0) for s in support])  # (N, D)
    hits = total = 0
    for c, f in enumerate(fake):
        pred = distances(f, protos).argmin(1)
        hits += int(((pred == c) & torch.isfinite(f).all(1)).sum())  # a non-finite sample is a miss
        total += len(f)
    return hits / total


def mean_pairwise_distance(x: torch.Tensor) -> float:
    n = len(x)
    if n < 2:
        raise ValueError("need at least two samples for a pairwise distance")
    d = distances(x, x)
    return float(d.sum() / (n * (n - 1)))


def diversity(fake: torch.Tensor, real: torch.Tensor) -> float:
    return mean_pairwise_distance(fake) / mean_pairwise_distance(real)


def copy_ratio(fake: torch.Tensor, support: torch.Tensor, other_real: torch.Tensor) -> float:
    eps = 1e-12
    to_support = distances(fake, support).min(1).values
    to_other = distances(fake, other_real).min(1).values
    return float((to_support / (to_other + eps)).mean())
