"""Model families: shapes at the supported resolutions, no running statistics, per-sample independence."""
import dataclasses
import math

import pytest
import torch

from metagan.config import ModelConfig, apply_overrides, get_preset, validate
from metagan.errors import ConfigError
from metagan.models import build_models


@pytest.mark.parametrize("size", [8, 16, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_shapes(size, channels):
    gen, disc = build_models(ModelConfig(z_dim=8, g_width=8, d_width=8, norm="group"), (channels, size, size))
    x = gen(torch.randn(5, 8))
    assert x.shape == (5, channels, size, size) and x.abs().max() <= 1
    assert disc(x).shape == (5,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in [*gen.modules(), *disc.modules()])
    assert len(list(gen.buffers())) == 0 and len(list(disc.buffers())) == 0


def test_discriminator_treats_samples_independently():
    # WGAN-GP's per-sample penalty relies on it: sample i's logit must not depend on sample j.
    _, disc = build_models(ModelConfig(d_width=8), (1, 16, 16))
    x = torch.randn(4, 1, 16, 16)
    y = x.clone()
    y[1:] = torch.randn(3, 1, 16, 16)
    assert torch.allclose(disc(x)[0], disc(y)[0])


def test_mlp_pair_for_vectors():
    gen, disc = build_models(ModelConfig(kind="mlp", z_dim=4, hidden=16), (7,))
    assert gen(torch.randn(3, 4)).shape == (3, 7) and disc(torch.randn(3, 7)).shape == (3,)


def test_bad_model_configs():
    with pytest.raises(ConfigError, match="mlp for vectors"):
        build_models(ModelConfig(), (7,))
    with pytest.raises(ConfigError, match="model.kind=conv"):
        build_models(ModelConfig(kind="mlp", condition="image"), (1, 8, 8))
    with pytest.raises(ConfigError, match="model.kind=conv"):
        validate(apply_overrides(get_preset("tiny"), ["model.kind=mlp", "model.condition=image"]))


def test_model_choices_are_checked():
    with pytest.raises(ConfigError, match="model.condition='support' is not one of: none, image, series"):
        validate(apply_overrides(get_preset("omniglot-figr"), ["model.condition=support"]))
    for removed in ("model.g_out=warp", "model.g_skip=half", "model.d_depth=2", "model.e_dim=32"):
        with pytest.raises(ConfigError, match=f"{removed.split('=')[0]}: this option was removed after metagan 0.1.0"):
            apply_overrides(get_preset("omniglot-joint"), [removed])


def test_the_warps_affine_component_starts_as_the_identity_and_moves_what_it_should():
    """model.g_affine adds a global affine displacement from z and the reference to the warp's field;
    zero-initialised (the untrained generator returns its reference)."""
    cfg = dataclasses.replace(get_preset("tiny").model, condition="image", g_affine=0.25, z_dim=8, g_width=8,
                              norm="group")
    gen, _ = build_models(cfg, (1, 16, 16))
    gen = gen.double()
    ref = torch.rand(4, 1, 16, 16, dtype=torch.float64) * 2 - 1
    z = torch.randn(4, 8, dtype=torch.float64)
    torch.testing.assert_close(gen(z, ref), ref)
    assert {n.split(".")[0] for n, _ in gen.named_parameters()} == {
        "enc1", "enc2", "fc", "conv1", "norm1", "flow", "affine"}
    # the affine translation alone: tx of 1 pixel (2/16 in [-1, 1] coordinates) shifts the sample left, as the
    # constant flow does in the test below
    with torch.no_grad():
        gen.affine.bias.copy_(torch.tensor([0, 0, 0, 0, math.atanh(2 / 16 / 0.25), 0.0]))
    out = gen(z, ref)
    torch.testing.assert_close(out[..., :-1], ref[..., 1:])
    # the linear part: a = d = -0.125 reads at 0.875 (x, y), the character magnified about the centre: the same
    # resampling as torch's affine_grid with the matrix 0.875 I
    with torch.no_grad():
        gen.affine.bias.copy_(torch.tensor([math.atanh(-0.5), 0, 0, math.atanh(-0.5), 0, 0]))
    theta = torch.tensor([[0.875, 0, 0], [0, 0.875, 0]], dtype=torch.float64).expand(4, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, [4, 1, 16, 16], align_corners=False)
    assert gen.mode == "bicubic"  # the default: bicubic, clamped to the images' range
    expected = torch.nn.functional.grid_sample(ref + 1, grid, mode="bicubic", align_corners=False).clamp(0, 2) - 1
    torch.testing.assert_close(gen(z, ref), expected)
    gen.mode = "bilinear"
    expected = torch.nn.functional.grid_sample(ref + 1, grid, mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(gen(z, ref), expected)
    gen.mode = "bicubic"
    # z drives the affine part once its weights do
    with torch.no_grad():
        gen.affine.bias.zero_()
        gen.affine.weight.normal_(0, 0.5)
    assert (gen(z, ref) - gen(-z, ref)).abs().max() > 1e-3


def test_g_affine_needs_a_warp_and_a_bound_of_at_least_zero():
    for preset, bad in (("omniglot-figr", "model.g_affine=0.1"), ("omniglot-joint", "model.g_affine=-0.1")):
        with pytest.raises(ConfigError, match="model.g_affine.*set model.g_affine=0"):
            apply_overrides(get_preset(preset), [bad])
    validate(apply_overrides(get_preset("omniglot-joint"), ["model.g_affine=0"]))


def test_warp_generator_moves_its_reference_smoothly_and_starts_as_the_identity():
    """model.condition=image: the sample is the reference resampled along a displacement field bounded by MAX_DISP;
    zero-initialised, so the untrained generator returns its reference exactly (pixel-centre grid)."""
    cfg = dataclasses.replace(get_preset("tiny").model, condition="image", z_dim=8, g_width=8, norm="group")
    gen, _ = build_models(cfg, (1, 16, 16))
    gen = gen.double()
    ref = torch.rand(4, 1, 16, 16, dtype=torch.float64) * 2 - 1
    z = torch.randn(4, 8, dtype=torch.float64)
    torch.testing.assert_close(gen(z, ref), ref)
    assert {n.split(".")[0] for n, _ in gen.named_parameters()} == {"enc1", "enc2", "fc", "conv1", "norm1", "flow"}
    # a constant displacement of 1 pixel to the right (flow in [-1, 1] coordinates: 1 px = 2/16) reads the
    # reference 1 pixel further right: the sample is the reference shifted left, background coming in at the edge
    with torch.no_grad():
        gen.flow.weight.zero_()
        gen.flow.bias.copy_(torch.tensor([math.atanh(2 / 16 / gen.MAX_DISP), 0.0]))
    out = gen(z, ref)
    torch.testing.assert_close(out[..., :-1], ref[..., 1:])
    torch.testing.assert_close(out[..., -1:], torch.full_like(out[..., -1:], -1.0))
    # z moves the sample once the field depends on it; never beyond [-1, 1]
    with torch.no_grad():
        gen.flow.weight.normal_(0, 0.5)
    a, b = gen(z, ref), gen(-z, ref)
    assert (a - b).abs().max() > 1e-3 and a.min() >= -1 - 1e-9 and a.max() <= 1 + 1e-9



@pytest.mark.parametrize("cfg, shape, ctx", [
    (ModelConfig(d_width=8), (1, 16, 16), None),
    (ModelConfig(d_width=8, condition="image"), (1, 16, 16), "pair"),
    (ModelConfig(kind="mlp", hidden=16), (7,), None)])
def test_discriminator_features_are_the_layer_its_logit_reads(cfg, shape, ctx):
    """forward(features=True) (loss.outer_mmd's feature space) returns the hidden layer whose last linear map
    is the logit."""
    torch.manual_seed(0)
    _, disc = build_models(cfg, shape)
    x = torch.randn(4, *shape)
    context = torch.randn(4, *shape) if ctx else None
    h = disc(x, context, features=True)
    last = disc.fc if cfg.kind == "conv" else disc.net[-1]
    assert h.dim() == 2 and h.shape[1] == last.in_features
    torch.testing.assert_close(last(h).squeeze(-1), disc(x, context))


@pytest.mark.parametrize("norm", ["none", "group"])
@pytest.mark.parametrize("paired", [False, True])
def test_conv_functional_forms_are_the_layers_with_the_given_parameters(norm, paired):
    # GanProblem runs the conv models through `functional(params, ...)` (no parameter swap): it must use the params
    # it is given, not the module's own, and compute what the layers compute (upsample, then convolve).
    from torch.nn.functional import interpolate, leaky_relu

    cfg = ModelConfig(z_dim=8, g_width=8, d_width=8, norm=norm, condition="image" if paired else "none")
    gen, disc = build_models(cfg, (1, 16, 16))
    other_g, other_d = build_models(cfg, (1, 16, 16))  # other random weights: the params to run with
    gen, disc, other_g, other_d = (m.double() for m in (gen, disc, other_g, other_d))
    pd = dict(other_d.named_parameters())
    x, ref = torch.randn(5, 1, 16, 16, dtype=torch.float64), torch.randn(5, 1, 16, 16, dtype=torch.float64)
    d = other_d
    h = leaky_relu(d.conv1(torch.cat([x, ref], 1) if paired else x), 0.2)
    feats = leaky_relu(d.conv2(h), 0.2).flatten(1)
    assert torch.allclose(disc.functional(pd, x, ref, features=True), feats, rtol=0, atol=1e-12)
    assert torch.allclose(disc.functional(pd, x, ref), d.fc(feats).squeeze(-1), rtol=0, atol=1e-12)
    if paired:  # the warp generator has no functional form: GanProblem calls it through functional_call
        assert not hasattr(gen, "functional")
        return
    g, z = other_g, torch.randn(5, 8, dtype=torch.float64)
    h = leaky_relu(g.fc(z), 0.2).view(5, -1, 4, 4)
    h = leaky_relu(g.norm1(g.conv1(interpolate(h, scale_factor=2, mode="nearest"))), 0.2)
    h = leaky_relu(g.norm2(g.conv2(interpolate(h, scale_factor=2, mode="nearest"))), 0.2)
    want = torch.tanh(g.out(h))
    got = gen.functional(dict(g.named_parameters()), z)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert not torch.allclose(gen(z), want)  # the module's own weights give another function
