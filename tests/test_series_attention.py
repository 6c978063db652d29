"""Attention series models (model.kind=attn1d): shapes, the pair generator starting as its reference, vmap = loop
for every learner, a few training steps of each and exact resume, and the checks of their shapes."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_meta import _learners, max_diff
from test_series_models import B, K, Q, SCHED, SHAPE, series_root, tiny_series  # noqa: F401 (a fixture)

from metagan import checkpoint as ckpt
from metagan.config import LossConfig, ModelConfig, apply_overrides, get_preset
from metagan.errors import ConfigError
from metagan.functional import params_of
from metagan.meta import GanProblem, meta_gradients, sample_noise
from metagan.models import build_models
from metagan.train import train


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


def _problem(condition):
    torch.manual_seed(0)
    gen, disc = _models(condition, SHAPE, width=4)
    gen, disc = gen.double(), disc.double()
    pg = params_of(gen)
    if condition == "series":
        with torch.no_grad():  # off the zero initialisation, where the fields ignore z and the reference
            pg["fields.weight"].normal_(0, 0.3)
    return GanProblem(gen, disc, LossConfig(kind="ns", r1_gamma=1.0)), pg, params_of(disc)


@pytest.mark.parametrize("condition", ["none", "series"])
@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_vmap_equals_the_per_task_loop_and_every_parameter_gets_a_meta_gradient(name, condition):
    prob, pg, pd = _problem(condition)
    learner = _learners(prob)[name]
    meta = learner.init_meta(pg, pd)
    g = torch.Generator().manual_seed(3)
    tasks = {"support": torch.rand(B, K, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
             "query": torch.rand(B, Q, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
             "noise": sample_noise(B, SCHED, K, Q, prob.z_dim, g, torch.float64)}
    g_loop, a_loop = meta_gradients(learner, meta, tasks, "loop")
    g_vmap, a_vmap = meta_gradients(learner, meta, tasks, "vmap")  # second order through the attention too
    assert max_diff(g_loop, g_vmap, tuple(meta)) < 1e-10
    for k in a_loop:
        torch.testing.assert_close(a_loop[k], a_vmap[k])
    assert all(float(v.abs().max()) > 0 for grp in ("g", "d") for v in g_loop[grp].values())


@pytest.mark.parametrize("learner", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_every_learner_trains_an_attention_model_and_resumes_bit_for_bit(tmp_path, series_root, learner):
    cfg = tiny_series(series_root, "model.kind=attn1d", f"meta.learner={learner}", "model.condition=series",
                      "train.steps=3", "train.ckpt_every=0", "train.sample_every=0")
    straight = train(cfg, out_dir=tmp_path / "a", progress=False)
    half = train(apply_overrides(cfg, ["train.steps=1"]), out_dir=tmp_path / "b", progress=False)
    first = load_file(str(half / ckpt.FILENAME))
    resumed = train(cfg, resume=half, progress=False)
    a, b = load_file(str(straight / ckpt.FILENAME)), load_file(str(resumed / ckpt.FILENAME))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(first["meta.g.zproj.weight"], a["meta.g.zproj.weight"])  # the steps moved G
    assert ckpt.load(straight).config.model.kind == "attn1d"  # and the checkpoint's tensors match its networks
