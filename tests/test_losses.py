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
