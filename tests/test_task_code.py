"""The warp generator's task code (model.g_code) and code-only adaptation (meta.adapt=code, CAVIA)."""
import dataclasses

import pytest
import torch

from metagan import checkpoint as ckpt
from metagan.adapt import load
from metagan.config import LossConfig, apply_overrides, get_preset, validate
from metagan.errors import ConfigError
from metagan.functional import params_of
from metagan.meta import MAML, GanProblem, InnerSchedule, MetaSGD, meta_gradients, sample_noise
from metagan.meta.problem import CODE
from metagan.models.resample import any_order_resampling
from metagan.models import build_models
from metagan.train import train

SHAPE = (1, 8, 8)
K, Q, B = 2, 3, 2
SCHED = InnerSchedule(2, 1, 1)


def make(code=3, adapt="code", seed=0, outer_mmd=10.0, diversity=0.3):
    cfg = dataclasses.replace(get_preset("tiny").model, condition="image", g_affine=0.25, g_code=code)
    torch.manual_seed(seed)
    gen, disc = build_models(cfg, SHAPE)
    gen, disc = gen.double(), disc.double()
    pg = params_of(gen)
    with torch.no_grad():  # leave the zero initialisation, where the warp ignores z, the reference and the code
        for k in ("flow.weight", "affine.weight"):
            pg[k].normal_(0, 0.3)
    loss = LossConfig(mismatch=1.0, diversity=diversity, diversity_tau=0.5, outer_adv=0.0 if outer_mmd else 1.0,
                      outer_mmd=outer_mmd)
    return GanProblem(gen, disc, loss, adapt), pg, params_of(disc)


def tasks(z_dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"support": torch.rand(B, K, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
            "query": torch.rand(B, Q, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
            "noise": sample_noise(B, SCHED, K, Q, z_dim, g, torch.float64)}


def one(t, i=0):
    return {k: (v[i] if k != "noise" else {n: x[i] for n, x in v.items()}) for k, v in t.items()}


def test_a_zero_code_leaves_the_generator_as_it_was_and_a_code_changes_its_samples():
    with_code, pg, _ = make(code=3)
    plain, pg0, _ = make(code=0, adapt="all")  # same seed: every parameter but the code's module is drawn the same
    assert set(pg) - set(pg0) == {CODE, "task_code.film.weight", "task_code.to_affine.weight"}
    pg0 = {k: pg[k] for k in pg0}
    z, ref = torch.randn(4, with_code.z_dim, dtype=torch.float64), tasks(with_code.z_dim)["support"][0]
    torch.testing.assert_close(with_code.generate(pg, z, ref), plain.generate(pg0, z, ref), rtol=0, atol=0)
    moved = {**pg, CODE: torch.tensor([0.5, -0.5, 1.0], dtype=torch.float64)}
    assert (with_code.generate(moved, z, ref) - with_code.generate(pg, z, ref)).abs().max() > 1e-3


def test_code_only_inner_loop_moves_the_code_and_nothing_else():
    prob, pg, pd = make()
    task = one(tasks(prob.z_dim))
    rates = ({k: 1.0 for k in pg}, {k: 1.0 for k in pd})
    pg1, pd1, stats = prob.inner_loop(pg, pd, *rates, task["support"], task["noise"], SCHED, True)
    assert (pg1[CODE] - pg[CODE]).abs().max() > 1e-6
    assert all(torch.equal(pg1[k], pg[k]) for k in pg if k != CODE)
    assert all(torch.equal(pd1[k], pd[k]) for k in pd) and "inner_d" not in stats
    full, _, _ = make(adapt="all")
    pg2, pd2, _ = full.inner_loop(pg, pd, *rates, task["support"], task["noise"], SCHED, True)
    assert any((pg2[k] - pg[k]).abs().max() > 1e-6 for k in pg if k != CODE)
    assert any((pd2[k] - pd[k]).abs().max() > 1e-6 for k in pd)


@pytest.mark.parametrize("learner", ["maml", "metasgd"])
def test_code_adaptation_meta_gradient_vmap_equals_loop_and_reaches_what_reads_the_code(learner):
    prob, pg, pd = make()
    lrn = MAML(prob, SCHED, 0.5, 0.1) if learner == "maml" else MetaSGD(prob, SCHED, 0.5, 0.1, per_tensor=True)
    meta = lrn.init_meta(pg, pd)
    t = tasks(prob.z_dim, seed=3)
    g_loop, _ = meta_gradients(lrn, meta, t, "loop")
    g_vmap, _ = meta_gradients(lrn, meta, t, "vmap")
    for group in meta:
        for k in meta[group]:
            torch.testing.assert_close(g_loop[group][k], g_vmap[group][k], rtol=1e-9, atol=1e-12)
    # the film weights act only through the adapted code (zero before adaptation): second order reaches them
    assert float(g_loop["g"]["task_code.film.weight"].abs().max()) > 0
    if learner == "metasgd":  # the code's learned rate is trained; rates of what never adapts get nothing
        assert float(g_loop["lr_g"][CODE].abs()) > 0
        assert all(float(g_loop["lr_g"][k].abs().max()) == 0 for k in meta["lr_g"] if k != CODE)
        assert all(float(v.abs().max()) == 0 for v in g_loop["lr_d"].values())


def test_code_adaptation_meta_gradient_matches_finite_differences():
    # the adversarial query loss, without the MMD (its bandwidth is held constant by design, so its gradient is
    # not the FD's) or the diversity term (|.| has kinks a step of h can cross)
    prob, pg, pd = make(outer_mmd=0.0, diversity=0.0)
    lrn = MAML(prob, SCHED, 0.5, 0.1)
    task = one(tasks(prob.z_dim, seed=4))
    with any_order_resampling(True):  # grid_sample's double backward is not the resampler's exact one
        grads, _ = lrn.task_grads({"g": pg, "d": pd}, task)

    def loss_g(p):
        (_, lg), _ = lrn._adapt_and_score({"g": p, "d": pd}, task)
        return float(lg)

    v = {k: torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
         for k, p in pg.items()}
    h = 1e-5
    fd = (loss_g({k: pg[k] + h * v[k] for k in pg}) - loss_g({k: pg[k] - h * v[k] for k in pg})) / (2 * h)
    assert sum(float((grads["g"][k] * v[k]).sum()) for k in pg) == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_code_options_are_checked():
    base = get_preset("tiny")
    validate(apply_overrides(base, ["model.condition=image", "model.g_code=4", "meta.adapt=code"]))
    for bad, match in ((["model.g_code=4"], "model.condition=image"),
                       (["model.condition=image", "meta.adapt=code"], "model.g_code"),
                       (["model.condition=image", "model.g_code=4", "meta.adapt=code", "meta.learner=reptile"],
                        "meta.learner"),
                       (["model.condition=image", "model.g_code=4", "meta.adapt=some"], "meta.adapt")):
        with pytest.raises(ConfigError, match=match):
            validate(apply_overrides(base, bad))


def test_a_generator_without_a_code_starts_a_coded_one_and_adaptation_moves_only_the_code(tmp_path):
    def tiny(*o):
        return apply_overrides(get_preset("tiny"), ["model.condition=image", "train.sample_every=0", *o])

    joint = train(tiny("meta.learner=joint", "train.steps=2"), out_dir=tmp_path / "j", progress=False)
    src = ckpt.load(joint)
    run = train(tiny("model.g_code=3", "meta.adapt=code", "meta.learner=metasgd", "train.steps=1",
                     "meta.outer_lr_g=0", "meta.outer_lr_d=0", "meta.outer_lr_rates=0", f"train.init_from={joint}"),
                out_dir=tmp_path / "c", progress=False)
    got = ckpt.load(run)
    for k, v in src.ema["g"].items():  # outer rates 0: the source's EMA generator, unchanged
        torch.testing.assert_close(got.meta["g"][k], v)
    assert float(got.meta["g"][CODE].abs().max()) == 0.0
    model = load(run)
    support = torch.rand(2, 1, 8, 8) * 2 - 1
    adapted = model.adapt(support, steps=2, generator=torch.Generator().manual_seed(0))
    pg = adapted.params_g
    assert float(pg[CODE].abs().max()) > 0
    assert all(torch.equal(pg[k], model.ema["g"][k]) for k in pg if k != CODE)
