"""Series models (model.kind=conv1d): shapes, the pair generator's warp, vmap = loop for every learner (conv1d and
attn1d), a few training steps of all four meta-learners and the joint baseline, exact resume, and `metagan adapt`
on series."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_meta import _learners, max_diff

from metagan import checkpoint as ckpt
from metagan.cli import main
from metagan.config import LossConfig, ModelConfig, apply_overrides, get_preset
from metagan.functional import params_of
from metagan.meta import GanProblem, InnerSchedule, meta_gradients, sample_noise
from metagan.models import build_models
from metagan.models.conv1d import warp
from metagan.train import train

SHAPE = (2, 16)
K, Q, B = 2, 3, 3
SCHED = InnerSchedule(2, 1, 2)


@pytest.mark.parametrize("condition", ["none", "series"])
def test_shapes_range_and_no_running_statistics(condition):
    gen, disc = build_models(ModelConfig(kind="conv1d", z_dim=8, g_width=8, d_width=8, norm="group",
                                         condition=condition), (3, 32))
    ref = torch.rand(5, 3, 32) * 2 - 1
    x = gen(torch.randn(5, 8), ref)
    assert x.shape == (5, 3, 32) and disc(x, ref).shape == (5,)
    assert disc(x, ref, features=True).shape == (5, disc.fc.in_features)
    assert len(list(gen.buffers())) == 0 and len(list(disc.buffers())) == 0
    if condition == "none":
        assert x.abs().max() <= 1


def test_the_pair_generator_starts_as_its_reference_and_warps_time_and_magnitude():
    gen, _ = build_models(ModelConfig(kind="conv1d", z_dim=8, g_width=8, condition="series"), (1, 16))
    gen = gen.double()
    ref = torch.rand(4, 1, 16, dtype=torch.float64) * 2 - 1
    z = torch.randn(4, 8, dtype=torch.float64)
    torch.testing.assert_close(gen(z, ref), ref)
    # a constant shift of one step reads the next step: the series moves one step left, and past the end it is
    # reflected (the last step reads the one before it), not held
    shift = torch.ones(4, 1, 16, dtype=torch.float64)
    torch.testing.assert_close(warp(ref, shift)[..., :-1], ref[..., 1:])
    torch.testing.assert_close(warp(ref, shift)[..., -1], ref[..., -2])
    torch.testing.assert_close(warp(ref, -2 * shift)[..., :2], ref[..., [2, 1]])
    torch.testing.assert_close(warp(ref, shift * 0.5)[..., :-1], (ref[..., 1:] + ref[..., :-1]) / 2)
    with torch.no_grad():  # the gain field alone: tanh(b) * MAX_GAIN scales the reference
        gen.fields.bias.copy_(torch.tensor([0.0, float(np.arctanh(0.4))]))
    torch.testing.assert_close(gen(z, ref), ref * (1 + 0.4 * gen.MAX_GAIN))
    with torch.no_grad():
        gen.fields.weight.normal_(0, 0.5)
    assert (gen(z, ref) - gen(-z, ref)).abs().max() > 1e-3  # z drives the warp once the fields read it


def _problem(condition, kind="conv1d"):
    cfg = ModelConfig(kind=kind, z_dim=4, g_width=4, d_width=4, condition=condition)
    torch.manual_seed(0)
    gen, disc = build_models(cfg, SHAPE)
    gen, disc = gen.double(), disc.double()
    pg = params_of(gen)
    if condition == "series":
        with torch.no_grad():  # off the zero initialisation, where the fields ignore z and the reference
            pg["fields.weight"].normal_(0, 0.3)
    return GanProblem(gen, disc, LossConfig(kind="ns", r1_gamma=1.0)), pg, params_of(disc)


@pytest.mark.parametrize("kind", ["conv1d", "attn1d"])
@pytest.mark.parametrize("condition", ["none", "series"])
@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_vmap_equals_the_per_task_loop_and_every_parameter_gets_a_meta_gradient(name, condition, kind):
    prob, pg, pd = _problem(condition, kind)
    learner = _learners(prob)[name]
    meta = learner.init_meta(pg, pd)
    g = torch.Generator().manual_seed(3)
    tasks = {"support": torch.rand(B, K, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
             "query": torch.rand(B, Q, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
             "noise": sample_noise(B, SCHED, K, Q, prob.z_dim, g, torch.float64)}
    g_loop, a_loop = meta_gradients(learner, meta, tasks, "loop")
    g_vmap, a_vmap = meta_gradients(learner, meta, tasks, "vmap")  # second order too: the warp gathers, and
    # attention is matmul and softmax
    assert max_diff(g_loop, g_vmap, tuple(meta)) < 1e-10
    for k in a_loop:
        torch.testing.assert_close(a_loop[k], a_vmap[k])
    assert all(float(v.abs().max()) > 0 for grp in ("g", "d") for v in g_loop[grp].values())


def _series_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(0)
    for c in range(6):
        (root / f"c{c}").mkdir()
        t = np.linspace(0, 2 * np.pi, 20)
        for i in range(5):
            np.save(root / f"c{c}" / f"{i}.npy", np.stack([np.sin((c + 1) * t), np.cos(t)]) +
                    0.1 * rng.standard_normal((2, 20)))
    return root


@pytest.fixture(scope="module")
def series_root(tmp_path_factory):
    return _series_root(tmp_path_factory)


def tiny_series(root, *overrides):
    return apply_overrides(get_preset("tiny"), ["data.source=series-folder", f"data.root={root}", "data.length=16",
                                                "data.channels=2", "model.kind=conv1d", *overrides])


def train_and_resume(cfg, tmp_path):
    """cfg's run straight through, and 1 step then resumed to the end: asserts the two end equal, bit for bit;
    returns the straight run's folder, the 1-step tensors and the end tensors."""
    straight = train(cfg, out_dir=tmp_path / "a", progress=False)
    half = train(apply_overrides(cfg, ["train.steps=1"]), out_dir=tmp_path / "b", progress=False)
    first = load_file(str(half / ckpt.FILENAME))
    resumed = train(cfg, resume=half, progress=False)
    a, b = load_file(str(straight / ckpt.FILENAME)), load_file(str(resumed / ckpt.FILENAME))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return straight, first, a


@pytest.mark.parametrize("learner", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_every_learner_trains_on_series_and_resumes_bit_for_bit(tmp_path, series_root, learner):
    plot = learner == "joint"  # the sample plot of a series run, drawn once
    cfg = tiny_series(series_root, f"meta.learner={learner}", "model.condition=series", "train.steps=3",
                      "train.ckpt_every=0", f"train.sample_every={3 if plot else 0}")
    straight, first, a = train_and_resume(cfg, tmp_path)
    assert not torch.equal(first["meta.g.fc.weight"], a["meta.g.fc.weight"])  # the steps moved the generator
    stored = ckpt.load(straight).config.data
    assert len(stored.center) == 2 and len(stored.scale) == 2  # the fitted normalisation travels with the model
    assert not plot or (straight / "samples-000003.png").stat().st_size > 1000


def test_adapt_reads_csv_and_npy_series_and_writes_csv_npy_and_a_plot(tmp_path, series_root, capsys):
    run = train(tiny_series(series_root, "train.steps=2", "train.sample_every=0"), out_dir=tmp_path, progress=False)
    sup = np.load(series_root / "c5" / "0.npy")
    np.savetxt(tmp_path / "a.csv", sup.T, delimiter=",", header="x,y", comments="")
    np.save(tmp_path / "b.npy", np.load(series_root / "c5" / "1.npy"))
    out = tmp_path / "out"
    assert main(["adapt", "--checkpoint", str(run), "--support", str(tmp_path / "a.csv"), str(tmp_path / "b.npy"),
                 "--num", "3", "--steps", "1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["plot.png", "sample-0000.csv", "sample-0001.csv",
                                                     "sample-0002.csv", "samples.npy"]
    samples = np.load(out / "samples.npy")
    assert samples.shape == (3, 2, 16) and np.isfinite(samples).all()
    np.testing.assert_allclose(np.loadtxt(out / "sample-0001.csv", delimiter=",", skiprows=1).T, samples[1],
                               rtol=1e-5, atol=1e-5)
    cfg = ckpt.load(run).config.data
    lo, hi = np.array(cfg.center) - cfg.scale, np.array(cfg.center) + cfg.scale
    assert (samples >= lo[None, :, None] - 1e-4).all() and (samples <= hi[None, :, None] + 1e-4).all()  # data units
    assert main(["adapt", "--checkpoint", str(run), "--support", str(tmp_path / "a.csv"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    kept = (out / "sample-0001.csv").read_bytes()  # a support that --overwrite would replace: refused, kept
    assert main(["adapt", "--checkpoint", str(run), "--support", str(out / "sample-0001.csv"), "--out", str(out),
                 "--overwrite"]) == 2
    assert "would replace" in capsys.readouterr().err and (out / "sample-0001.csv").read_bytes() == kept


def test_series_models_are_checked_against_their_shapes():
    from metagan.errors import ConfigError
    with pytest.raises(ConfigError, match="multiple of 4"):
        build_models(ModelConfig(kind="conv1d"), (1, 30))
    with pytest.raises(ConfigError, match="series take none or series"):
        build_models(dataclasses.replace(ModelConfig(kind="conv1d"), condition="image"), (1, 32))
    with pytest.raises(ConfigError, match="needs model.kind=conv1d"):
        apply_overrides(get_preset("tiny"), ["model.condition=series"])
