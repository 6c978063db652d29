"""Attention series models (model.kind=attn1d): shapes, the pair generator starting as its reference, a few
training steps of each learner and exact resume, and the checks of their shapes (vmap = loop for every learner:
test_series_models.py)."""
from __future__ import annotations

import pytest
import torch
from test_series_models import series_root, tiny_series, train_and_resume  # noqa: F401 (a fixture)

from metagan import checkpoint as ckpt
from metagan.config import ModelConfig, apply_overrides, get_preset
from metagan.errors import ConfigError
from metagan.models import build_models


def _models(condition: str, shape=(3, 32), width: int = 8):
    return build_models(ModelConfig(kind="attn1d", z_dim=8, g_width=width, d_width=width, condition=condition),
                        shape)


@pytest.mark.parametrize("condition", ["none", "series"])
def test_shapes_features_and_no_running_statistics(condition):
    gen, disc = _models(condition)
    ref = torch.rand(5, 3, 32) * 2 - 1
    x = gen(torch.randn(5, 8), ref)
    assert x.shape == (5, 3, 32) and disc(x, ref).shape == (5,) and disc(x, ref, features=True).shape == (5, 8)
    assert len(list(gen.buffers())) == 0 and len(list(disc.buffers())) == 0
    if condition == "none":
        assert x.abs().max() <= 1
    xs = ref[:1].clone().requires_grad_(True)  # D reads every step
    assert (torch.autograd.grad(disc(xs, ref[:1]).sum(), xs)[0][0].abs().sum(0) > 0).all()


def test_the_pair_generator_starts_as_its_reference_and_then_warps_it_by_the_latent():
    gen, _ = _models("series", (1, 16))
    gen = gen.double()
    ref = torch.rand(4, 1, 16, dtype=torch.float64) * 2 - 1
    z = torch.randn(4, 8, dtype=torch.float64)
    torch.testing.assert_close(gen(z, ref), ref)
    with torch.no_grad():  # the gain field alone: tanh(b) * MAX_GAIN scales the reference
        gen.fields.bias.copy_(torch.tensor([0.0, 0.4], dtype=torch.float64).atanh())
    torch.testing.assert_close(gen(z, ref), ref * (1 + 0.4 * gen.MAX_GAIN))
    with torch.no_grad():
        gen.fields.weight.normal_(0, 0.5)
    assert (gen(z, ref) - gen(-z, ref)).abs().max() > 1e-3
    # the warp of the last step reads the first patch of the reference: attention mixes the tokens
    r = ref[:1].clone().requires_grad_(True)
    assert torch.autograd.grad(gen(z[:1], r)[0, 0, -1], r)[0][0, 0, :4].abs().sum() > 0


def test_shapes_the_attention_models_cannot_take_are_refused():
    with pytest.raises(ConfigError, match="multiples of 4"):
        _models("series", width=6)
    with pytest.raises(ConfigError, match="multiple of 4"):
        _models("none", shape=(1, 30))
    with pytest.raises(ConfigError, match="multiple of 4"):
        apply_overrides(get_preset("pigcvp-joint"), ["model.kind=attn1d", "data.length=30"])
    with pytest.raises(ConfigError, match="conv1d or attn1d"):
        apply_overrides(get_preset("pigcvp-joint"), ["model.kind=conv"])


@pytest.mark.parametrize("learner", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_every_learner_trains_an_attention_model_and_resumes_bit_for_bit(tmp_path, series_root, learner):
    cfg = tiny_series(series_root, "model.kind=attn1d", f"meta.learner={learner}", "model.condition=series",
                      "train.steps=3", "train.ckpt_every=0", "train.sample_every=0")
    straight, first, a = train_and_resume(cfg, tmp_path)
    assert not torch.equal(first["meta.g.zproj.weight"], a["meta.g.zproj.weight"])  # the steps moved G
    assert ckpt.load(straight).config.model.kind == "attn1d"  # and the checkpoint's tensors match its networks
