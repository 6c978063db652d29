"""Distribution metrics in the feature network's space, generated against real images of the same
classes that were not used as support.

- Frechet distance and kernel distance (KID): torchmetrics' implementations, fed with features that we
  compute once (an identity "feature extractor" passes them through).
- Precision, recall, density, coverage (Naeem et al. 2020), k-nearest-neighbour balls in feature space.

All functions take features (N, D) and return floats.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .fewshot import distances


class _Precomputed(nn.Module):
    """torchmetrics calls its feature extractor on what `update` receives: here, features already."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) of Gaussians fitted to the two sets.

    torchmetrics computes it; when its eigen-solver fails on a singular covariance (a collapsed generator
    whose samples are all the same gives S_f = 0), the value is recomputed with scipy's sqrtm after adding
    1e-6 to both diagonals, as pytorch-fid does."""
    if not (torch.isfinite(real).all() and torch.isfinite(fake).all()):
        return float("nan")
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), reset_real_features=True)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    value = float(fid.compute())
    return value if math.isfinite(value) else _frechet_regularised(real.double(), fake.double())


def _frechet_regularised(real: torch.Tensor, fake: torch.Tensor, eps: float = 1e-6) -> float:
    from scipy import linalg

    mu1, mu2 = real.mean(0).numpy(), fake.mean(0).numpy()
    s1, s2 = np.cov(real.numpy(), rowvar=False), np.cov(fake.numpy(), rowvar=False)
    offset = np.eye(s1.shape[0]) * eps
    covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, subset_size: int | None = None,
                    seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    size = subset_size or min(len(real), len(fake), 1000)
    with warnings.catch_warnings():  # "will save all extracted features": that is what we want
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchmetrics draws its subsets from the global RNG
        mean, std = kid.compute()
    return float(mean), float(std)


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage with k-NN radii (Naeem et al. 2020).

    precision: share of fake samples inside some real sample's k-NN ball; recall: share of real samples
    inside some fake sample's k-NN ball; density: mean number of real balls holding a fake sample, / k;
    coverage: share of real samples whose ball holds at least one fake sample."""
    real, fake = real.double(), fake.double()
    r_real = _knn_radius(real, k)  # (N,)
    r_fake = _knn_radius(fake, k)  # (M,)
    d = distances(real, fake)  # (N, M)
    inside_real = d < r_real[:, None]  # fake j inside real ball i
    return {
        "precision": float(inside_real.any(0).double().mean()),
        "recall": float((d < r_fake[None, :]).any(1).double().mean()),
        "density": float(inside_real.double().sum(0).mean() / k),
        "coverage": float((d.min(1).values < r_real).double().mean()),
    }


def _knn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    if len(x) <= k:
        raise ValueError(f"prdc needs more than k={k} samples per set, got {len(x)}")
    d = distances(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0
