"""Each metric on cases whose answer is known."""
import math

import pytest
import torch

from metagan.metrics import class_fidelity, copy_ratio, diversity, frechet_distance, kernel_distance, prdc


def feats(n, d=8, shift=0.0, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_frechet_distance_zero_for_identical_sets_and_grows_with_shift():
    x = feats(400)
    assert frechet_distance(x, x.clone()) == pytest.approx(0.0, abs=1e-6)
    fds = [frechet_distance(x, feats(400, seed=1, shift=s)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert fds == sorted(fds) and fds[-1] > 10 * max(fds[0], 1e-3)
    # a pure mean shift of s in every one of 8 dims adds 8 s^2 (same covariance): check the scale
    y = x + 1.0
    assert frechet_distance(x, y) == pytest.approx(8.0, rel=1e-6)


def test_kernel_distance_near_zero_for_same_distribution_and_positive_for_shift():
    a, b = feats(300, seed=0), feats(300, seed=1)
    same, _ = kernel_distance(a, b, subsets=20, subset_size=100)
    shifted, _ = kernel_distance(a, feats(300, seed=2, shift=1.0), subsets=20, subset_size=100)
    assert abs(same) < 0.05 < shifted
    assert kernel_distance(a, b, subsets=20, subset_size=100) == kernel_distance(a, b, subsets=20, subset_size=100)


def test_prdc_collapsed_generator_has_low_recall_and_coverage():
    real = feats(300)
    good = prdc(real, feats(300, seed=5))
    collapsed = prdc(real, real[:1].repeat(300, 1) + 1e-3 * feats(300, seed=6))
    assert good["precision"] > 0.7 and good["recall"] > 0.7 and good["coverage"] > 0.7
    assert collapsed["recall"] < 0.1 and collapsed["coverage"] < 0.1
    far = prdc(real, feats(300, seed=7, shift=10.0))
    assert far["precision"] == 0.0 and far["density"] == 0.0


def test_diversity_of_collapse_is_low_and_of_real_data_near_one():
    real = feats(200)
    assert diversity(feats(200, seed=3), real) == pytest.approx(1.0, abs=0.1)
    assert diversity(real[:1].repeat(50, 1) + 1e-3 * feats(50, seed=4), real) < 0.01


def test_copy_ratio_flags_a_generator_that_returns_its_support():
    real = feats(30)
    support, others = real[:5], real[5:]
    copies = support.repeat(4, 1)
    assert copy_ratio(copies, support, others) < 1e-6
    assert copy_ratio(feats(40, seed=9), support, others) > 0.5


def test_class_fidelity_noise_is_near_chance_and_class_samples_score_high():
    centers = [feats(1, shift=0.0, seed=c) * 5 for c in range(10)]
    support = [c + 0.1 * feats(5, seed=100 + i) for i, c in enumerate(centers)]
    fake_good = [c + 0.1 * feats(20, seed=200 + i) for i, c in enumerate(centers)]
    fake_noise = [5 * feats(20, seed=300 + i) for i in range(10)]
    assert class_fidelity(fake_good, support) == 1.0
    assert class_fidelity(fake_noise, support) < 0.3


def test_frechet_distance_of_a_collapsed_set_is_finite():
    real = feats(300)
    point = torch.full((1, 8), 0.5, dtype=torch.float64)
    fd = frechet_distance(real, point.repeat(300, 1))
    # all fake samples identical: FD = |mu_r - p|^2 + tr(S_r)
    want = float(((real.mean(0) - point[0]) ** 2).sum() + torch.cov(real.T).trace())
    assert fd == pytest.approx(want, rel=1e-3)
    assert math.isnan(frechet_distance(real, torch.full((300, 8), float("nan"), dtype=torch.float64)))


def test_metrics_of_identical_samples_are_finite():
    # torch.cdist's matmul shortcut gives NaN for identical points; a collapsed generator makes them
    real = feats(100, d=64, scale=3.0)
    same = torch.full((100, 64), 0.7, dtype=torch.float64)
    assert diversity(same, real) == 0.0
    assert math.isfinite(copy_ratio(same, real[:5], real[5:]))
    assert all(math.isfinite(v) for v in prdc(real, same).values())
