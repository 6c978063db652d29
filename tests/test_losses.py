"""Each loss against a value computed by hand."""
import math

import pytest
import torch

from metagan import losses


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_non_saturating_matches_formula():
    real, fake = t(2.0, 0.0), t(-1.0, 0.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    want_d = -(math.log(sig(2.0)) + math.log(sig(0.0))) / 2 - (math.log(1 - sig(-1.0)) + math.log(1 - sig(0.5))) / 2
    want_g = -(math.log(sig(-1.0)) + math.log(sig(0.5))) / 2
    assert losses.ns_d_loss(real, fake).item() == pytest.approx(want_d, rel=1e-12)
    assert losses.ns_g_loss(fake).item() == pytest.approx(want_g, rel=1e-12)
    # at logits 0 both players sit at log 2 per term
    assert losses.ns_d_loss(t(0.0), t(0.0)).item() == pytest.approx(2 * math.log(2))


def test_wgan_and_hinge_values():
    real, fake = t(0.5, 2.0), t(-2.0, 0.0)
    assert losses.wgan_d_loss(real, fake).item() == pytest.approx(-1.0 - 1.25)
    assert losses.wgan_g_loss(fake).item() == pytest.approx(1.0)
    # hinge: relu(1-0.5)=0.5, relu(1-2)=0 -> 0.25; relu(1-2)=0, relu(1+0)=1 -> 0.5
    assert losses.hinge_d_loss(real, fake).item() == pytest.approx(0.75)
    assert losses.hinge_g_loss(fake).item() == pytest.approx(1.0)


def test_gradient_penalty_linear_critic():
    # D(x) = <w, x> over all pixels: grad = w for every sample, ||w|| = 5 -> (5 - 1)^2 = 16
    w = torch.zeros(1, 2, 2, dtype=torch.float64)
    w[0, 0, 0], w[0, 1, 1] = 3.0, 4.0
    disc = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(3, 1, 2, 2, dtype=torch.float64), torch.randn(3, 1, 2, 2, dtype=torch.float64)
    gp = losses.gradient_penalty(disc, real, fake, torch.rand(3, dtype=torch.float64))
    assert gp.item() == pytest.approx(16.0)


def test_gradient_penalty_is_per_sample_over_all_pixels():
    # D(x) = sum x^2: grad 2 xhat; with eps = 1, xhat = real. Norms per sample: 2*1 and 2*3.
    disc = lambda x: x.pow(2).flatten(1).sum(1)  # noqa: E731
    real = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    real[0, 0, 0, 0] = 1.0
    real[1, 0, 1, 2], real[1, 0, 2, 0] = math.sqrt(5.0), 2.0  # norm 3
    gp = losses.gradient_penalty(disc, real, torch.zeros_like(real), torch.ones(2, dtype=torch.float64))
    assert gp.item() == pytest.approx(((2 - 1) ** 2 + (6 - 1) ** 2) / 2)
    # a batch-level norm (one norm over everything) would give (sqrt(4 + 36) - 1)^2 instead
    assert gp.item() != pytest.approx((math.sqrt(40) - 1) ** 2)


def test_r1_penalty():
    disc = lambda x: x.pow(2).flatten(1).sum(1)  # noqa: E731
    real = t(1.0, 2.0, 0.0, 3.0).view(2, 1, 2)  # grads 2x: squared norms 4*5, 4*9
    assert losses.r1_penalty(disc, real).item() == pytest.approx((20 + 36) / 2)


def test_mmd2_is_the_unbiased_estimate_with_the_stated_kernel():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64) + 1
    xy = torch.cat([x, y])
    bw = sum(float((a - b).pow(2).sum()) for a in xy for b in xy) / len(xy) ** 2

    def k(a, b):
        d = float((a - b).pow(2).sum())
        return sum(math.exp(-d / (s * bw)) for s in (0.25, 1.0, 4.0))
    ref = (sum(k(x[i], x[j]) for i in range(4) for j in range(4) if i != j) / 12
           + sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
           - 2 * sum(k(a, b) for a in x for b in y) / 20)
    assert losses.mmd2(x, y).item() == pytest.approx(ref, rel=1e-10)
    # one distribution: mean near 0 (unbiased); two: clearly positive; finite gradients where x has duplicates
    same = torch.stack([losses.mmd2(torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g))
                        for _ in range(300)])
    shifted = torch.stack([losses.mmd2(torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g) + 1.5)
                           for _ in range(300)])
    assert abs(same.mean().item()) < 3 * same.std().item() / math.sqrt(300)
    assert shifted.mean().item() > 10 * same.std().item() / math.sqrt(300) and shifted.mean() > 0.1
    x2 = torch.zeros(3, 2, requires_grad=True)
    losses.mmd2(x2, torch.randn(3, 2, generator=g)).backward()
    assert torch.isfinite(x2.grad).all()
