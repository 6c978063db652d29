"""Meta-learners: agreement with their definitions, in float64 on tiny models."""
import dataclasses

import pytest
import torch

from metagan.config import LossConfig, get_preset
from metagan.functional import params_of
from metagan.meta import (FOMAML, MAML, GanProblem, InnerSchedule, Joint, MetaSGD, Reptile, meta_gradients,
                          sample_noise)
from metagan.models import build_models

SHAPE = (1, 8, 8)
K, Q, B = 2, 3, 3


def make_problem(kind="ns", r1=0.0, model="conv", condition="none", mismatch=0.0, diversity=0.0, g_affine=0.0,
                 outer_mmd=0.0, outer_adv=1.0, recon=0.0):
    cfg = dataclasses.replace(get_preset("tiny").model, kind=model, hidden=8, condition=condition, g_affine=g_affine)
    torch.manual_seed(0)
    gen, disc = build_models(cfg, SHAPE, posterior=recon > 0)
    gen, disc = gen.double(), disc.double()
    loss = LossConfig(kind=kind, r1_gamma=r1, mismatch=mismatch, diversity=diversity, diversity_tau=0.5,
                      outer_mmd=outer_mmd, outer_adv=outer_adv, recon=recon)
    pg = params_of(gen)
    with torch.no_grad():  # leave the warp's zero initialisation, where the field ignores z and the reference
        for k in ("flow.weight", "affine.weight"):
            if k in pg:
                pg[k].normal_(0, 0.3)
    return GanProblem(gen, disc, loss), pg, params_of(disc)


def make_tasks(sched, z_dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"support": torch.rand(B, K, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
            "query": torch.rand(B, Q, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
            "noise": sample_noise(B, sched, K, Q, z_dim, g, torch.float64)}


def max_diff(a, b, groups=("g", "d")):
    return max(float((a[gp][k] - b[gp][k]).abs().max()) for gp in groups for k in a[gp])


SCHED = InnerSchedule(2, 1, 2)


def loop_checked_by_vmap(learner, meta, tasks):
    """Meta-gradients and aux by the per-task loop, checked equal to vmap's (every learner and model; second order
    through the warp generator resamples by gathering under vmap, metagan.models.resample)."""
    g_loop, a_loop = meta_gradients(learner, meta, tasks, "loop")
    g_vmap, a_vmap = meta_gradients(learner, meta, tasks, "vmap")
    assert max_diff(g_loop, g_vmap, tuple(meta)) < 1e-10
    for k in a_loop:
        torch.testing.assert_close(a_loop[k], a_vmap[k])
    return g_loop, a_loop


@pytest.mark.parametrize("kind", ["ns", "wgan-gp", "hinge"])
def test_first_order_maml_equals_maml_with_detached_inner_gradients(kind):
    prob, pg, pd = make_problem(kind)
    tasks = make_tasks(SCHED, prob.z_dim)
    fo, _ = meta_gradients(FOMAML(prob, SCHED, 0.1, 0.1), {"g": pg, "d": pd}, tasks, "loop")
    ref, _ = meta_gradients(MAML(prob, SCHED, 0.1, 0.1, detach_inner=True), {"g": pg, "d": pd}, tasks, "loop")
    full, _ = meta_gradients(MAML(prob, SCHED, 0.1, 0.1), {"g": pg, "d": pd}, tasks, "loop")
    assert max_diff(fo, ref) < 1e-12
    assert max_diff(fo, full) > 1e-6  # second order really differs: the comparison can fail


def test_metasgd_with_equal_fixed_rates_equals_maml():
    prob, pg, pd = make_problem("wgan-gp")
    tasks = make_tasks(SCHED, prob.z_dim)
    ms = MetaSGD(prob, SCHED, 0.07, 0.03)
    g_ms, _ = meta_gradients(ms, ms.init_meta(pg, pd), tasks, "loop")
    g_maml, _ = meta_gradients(MAML(prob, SCHED, 0.07, 0.03), {"g": pg, "d": pd}, tasks, "loop")
    assert max_diff(g_ms, g_maml) < 1e-12
    assert set(g_ms) == {"g", "d", "lr_g", "lr_d"}


@pytest.mark.parametrize("first_order", [False, True])
def test_metasgd_per_tensor_rates_get_the_summed_meta_gradient_of_equal_element_rates(first_order):
    """meta.rates=tensor: one 0-dim rate per parameter tensor. Starting from the same values, the players'
    meta-gradients equal the element-wise learner's and each tensor rate's is the sum of its elements'."""
    prob, pg, pd = make_problem("ns")
    tasks = make_tasks(SCHED, prob.z_dim)
    elem, tens = (MetaSGD(prob, SCHED, 0.07, 0.03, first_order, per_tensor=p) for p in (False, True))
    meta_t = tens.init_meta(pg, pd)
    assert all(v.ndim == 0 for grp in ("lr_g", "lr_d") for v in meta_t[grp].values())
    g_e, _ = meta_gradients(elem, elem.init_meta(pg, pd), tasks, "loop")
    g_t, _ = meta_gradients(tens, meta_t, tasks, "loop")
    g_v, _ = meta_gradients(tens, meta_t, tasks, "vmap")
    assert max_diff(g_t, g_e) < 1e-12 and max_diff(g_v, g_t, ("g", "d", "lr_g", "lr_d")) < 1e-12
    for grp in ("lr_g", "lr_d"):
        for k, v in g_e[grp].items():
            assert g_t[grp][k].shape == ()
            torch.testing.assert_close(g_t[grp][k], v.sum(), rtol=1e-10, atol=1e-14)
    assert max(float(g_t["lr_g"][k].abs()) for k in g_t["lr_g"]) > 1e-6  # the rates really get a gradient


@pytest.mark.parametrize("first_order", [False, True])
def test_metasgd_per_step_rates_sum_to_the_per_tensor_gradient_and_each_step_uses_its_own(first_order):
    """meta.rates=step (MAML++'s per-step rates): a (T,) rate per tensor. Starting from equal values, the players'
    meta-gradients equal the per-tensor learner's and the step rates' gradients sum to the tensor rate's; inner step
    t reads entry t, so with the rates of every step after the first set to 0 the inner loop stops after one step."""
    prob, pg, pd = make_problem("ns")
    tasks = make_tasks(SCHED, prob.z_dim)
    tens, step = (MetaSGD(prob, SCHED, 0.07, 0.03, first_order, per_tensor=True, per_step=s) for s in (False, True))
    meta_s = step.init_meta(pg, pd)
    assert all(v.shape == (SCHED.steps,) for grp in ("lr_g", "lr_d") for v in meta_s[grp].values())
    g_t, _ = meta_gradients(tens, tens.init_meta(pg, pd), tasks, "loop")
    g_s, _ = meta_gradients(step, meta_s, tasks, "loop")
    g_v, _ = meta_gradients(step, meta_s, tasks, "vmap")
    assert max_diff(g_s, g_t) < 1e-12 and max_diff(g_v, g_s, ("g", "d", "lr_g", "lr_d")) < 1e-12
    for grp in ("lr_g", "lr_d"):
        for k, v in g_t[grp].items():
            torch.testing.assert_close(g_s[grp][k].sum(), v, rtol=1e-10, atol=1e-14)
    assert any(float(g_s["lr_g"][k][1].abs()) > 1e-6 for k in g_s["lr_g"])  # the second step's rates get one
    first_only = {**meta_s, **{grp: {k: v * torch.tensor([1.0, 0.0], dtype=v.dtype) for k, v in meta_s[grp].items()}
                               for grp in ("lr_g", "lr_d")}}
    one = InnerSchedule(1, SCHED.n_d, SCHED.n_g)
    task = {k: (v[0] if k != "noise" else {n: t[0] for n, t in v.items()}) for k, v in tasks.items()}
    a = prob.inner_loop(pg, pd, *step.rates(first_only), task["support"], task["noise"], SCHED, True)
    b = prob.inner_loop(pg, pd, *tens.rates(tens.init_meta(pg, pd)), task["support"], task["noise"], one, True)
    assert max_diff({"g": a[0], "d": a[1]}, {"g": b[0], "d": b[1]}) < 1e-12
    c = prob.inner_loop(pg, pd, *step.rates(meta_s), task["support"], task["noise"], SCHED, True)
    assert max_diff({"g": a[0], "d": a[1]}, {"g": c[0], "d": c[1]}) > 1e-6


def test_maml_meta_gradient_matches_finite_differences():
    """Second-order MAML: d L_D(query) / d theta_D through the whole unrolled adversarial inner loop."""
    prob, pg, pd = make_problem("wgan-gp", model="mlp")
    sched = InnerSchedule(2, 1, 1)
    task = {k: (v[0] if k != "noise" else {n: t[0] for n, t in v.items()}) for k, v in make_tasks(sched, prob.z_dim).items()}
    learner = MAML(prob, sched, 0.1, 0.1)
    grads, _ = learner.task_grads({"g": pg, "d": pd}, task)

    def losses(pg_, pd_):
        (ld, lg), _ = learner._adapt_and_score({"g": pg_, "d": pd_}, task)
        return float(ld), float(lg)

    gen = torch.Generator().manual_seed(1)
    for player, idx in (("d", 0), ("g", 1)):
        params = pd if player == "d" else pg
        v = {k: torch.randn(p.shape, generator=gen, dtype=torch.float64) for k, p in params.items()}
        h = 1e-5
        plus = {k: params[k] + h * v[k] for k in params}
        minus = {k: params[k] - h * v[k] for k in params}
        args = lambda p: (pg, p) if player == "d" else (p, pd)  # noqa: E731
        fd = (losses(*args(plus))[idx] - losses(*args(minus))[idx]) / (2 * h)
        analytic = sum(float((grads[player][k] * v[k]).sum()) for k in params)
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8), player


class Quadratic(GanProblem):
    """L_D = a/2 |w - c|^2, L_G = b/2 |v - e|^2: each inner update has a closed form."""

    def __init__(self, a, b, c, e):
        self.a, self.b, self.c, self.e, self.z_dim = a, b, c, e, 1
        self.loss, self.paired = LossConfig(), False

    def generate(self, pg, z, context):
        return z

    def d_loss(self, pd, real, fake, eps, context, real_shift=0, other=None):
        loss = 0.5 * self.a * (pd["w"] - self.c).pow(2).sum()
        return loss, loss

    def g_loss(self, pg, pd, z, context):
        return 0.5 * self.b * (pg["v"] - self.e).pow(2).sum()


def test_reptile_matches_closed_form_on_quadratic():
    a, b, lr_d, lr_g, T = 2.0, 0.5, 0.1, 0.3, 7
    c, e = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    prob = Quadratic(a, b, c, e)
    sched = InnerSchedule(T, 1, 1)
    w0, v0 = torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64)
    task = {"support": torch.zeros(1), "query": torch.zeros(1),
            "noise": {"z_d": torch.zeros(T, 1, 1), "eps_d": torch.zeros(T, 1, 1), "z_g": torch.zeros(T, 1, 1)}}
    grads, _ = Reptile(prob, sched, lr_g, lr_d).task_grads({"g": {"v": v0}, "d": {"w": w0}}, task)
    # w_T = c + (1 - lr a)^T (w0 - c), so theta - theta' = (1 - (1 - lr a)^T)(w0 - c)
    want_d = (1 - (1 - lr_d * a) ** T) * (w0 - c)
    want_g = (1 - (1 - lr_g * b) ** T) * (v0 - e)
    torch.testing.assert_close(grads["d"]["w"], want_d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads["g"]["v"], want_g, rtol=1e-12, atol=1e-12)


def _learners(prob):
    return {"maml": MAML(prob, SCHED, 0.1, 0.1), "fomaml": FOMAML(prob, SCHED, 0.1, 0.1),
            "reptile": Reptile(prob, SCHED, 0.1, 0.1), "metasgd": MetaSGD(prob, SCHED, 0.1, 0.1),
            "metasgd-fo": MetaSGD(prob, SCHED, 0.1, 0.1, first_order=True), "joint": Joint(prob, SCHED, 0.1, 0.1)}


@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "metasgd", "metasgd-fo", "joint"])
def test_gradients_reach_every_meta_parameter(name):
    prob, pg, pd = make_problem("ns", r1=1.0)
    learner = _learners(prob)[name]
    meta = learner.init_meta(pg, pd)
    grads, _ = meta_gradients(learner, meta, make_tasks(SCHED, prob.z_dim), "loop")
    assert grads.keys() == meta.keys()
    for group in meta:
        assert grads[group].keys() == meta[group].keys()
        for k, g in grads[group].items():
            assert g.shape == meta[group][k].shape
            assert torch.isfinite(g).all(), (group, k)
            assert g.abs().max() > 0, f"no meta-gradient reaches {group}.{k}"


@pytest.mark.parametrize("kind", ["ns", "wgan-gp", "hinge"])
@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_vmap_equals_loop(name, kind):
    prob, pg, pd = make_problem(kind)
    learner = _learners(prob)[name]
    meta = learner.init_meta(pg, pd)
    tasks = make_tasks(SCHED, prob.z_dim, seed=3)
    g_loop, a_loop = meta_gradients(learner, meta, tasks, "loop")
    g_vmap, a_vmap = meta_gradients(learner, meta, tasks, "vmap")
    assert max_diff(g_loop, g_vmap, tuple(meta)) < 1e-10
    for k in a_loop:
        torch.testing.assert_close(a_loop[k], a_vmap[k])


def test_paired_models_never_judge_a_real_image_beside_itself():
    """condition=image: D sees (x, reference) pairs. Real support image i is paired with support image i+1,
    so 'identical pair' never means 'real' and copying the reference cannot fool D."""
    prob, pg, pd = make_problem("ns", condition="image")
    support = torch.arange(3, dtype=torch.float64).view(3, 1, 1, 1).expand(3, *SHAPE)
    real_refs = prob.refs(support, 3, shift=1)
    assert [float(r[0, 0, 0]) for r in real_refs] == [1.0, 2.0, 0.0]
    assert [float(r[0, 0, 0]) for r in prob.refs(support, 5)] == [0.0, 1.0, 2.0, 0.0, 1.0]  # fakes: i mod K
    seen = []
    prob.discriminate = lambda p, x, ctx: seen.append((x, ctx)) or x.flatten(1).sum(1)  # record D's inputs
    fake = prob.generate(pg, torch.randn(3, prob.z_dim, dtype=torch.float64), support)
    prob.d_loss(pd, support, fake, torch.zeros(3, dtype=torch.float64), support, real_shift=1)
    x, ctx = seen[0]
    assert not any(torch.equal(x[i], ctx[i]) for i in range(3))  # the three real pairs
    torch.testing.assert_close(ctx[3:], support)  # each fake beside the image it was made from


@pytest.mark.parametrize("kind", ["ns", "hinge"])
def test_mismatch_term_calls_real_images_beside_another_class_fake(kind):
    """loss.mismatch: D's loss gains w * (fake half of L_D) on (real i, other[i mod K']) pairs, from the same
    D batch as the real and fake pairs; without `other` (adaptation) the loss is the plain one."""
    from metagan import losses
    prob, pg, pd = make_problem(kind, condition="image", mismatch=0.5)
    plain, *_ = make_problem(kind, condition="image")
    tasks = make_tasks(SCHED, prob.z_dim, seed=5)
    support, query, other = tasks["support"][0], tasks["query"][0], tasks["support"][1]
    fake = prob.generate(pg, torch.randn(Q, prob.z_dim, dtype=torch.float64), support)
    eps = torch.zeros(Q, dtype=torch.float64)
    base, fl = plain.d_loss(pd, query, fake, eps, support)
    with_other, fl2 = prob.d_loss(pd, query, fake, eps, support, other=other)
    mismatched = prob.discriminate(pd, query, other[torch.arange(Q) % K])
    torch.testing.assert_close(with_other, base + 0.5 * losses.FAKE_TERMS[kind](mismatched))
    torch.testing.assert_close(fl, fl2)
    torch.testing.assert_close(prob.d_loss(pd, query, fake, eps, support)[0], base)


@pytest.mark.parametrize("term, group", [("mismatch", "d"), ("diversity", "g")])
@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_loss_terms_vmap_equal_loop_and_reach_their_player(name, term, group):
    """loss.mismatch (D's losses) and loss.diversity (G's): vmap = loop, and the term changes its player's
    meta-gradient."""
    prob, pg, pd = make_problem("ns", condition="image", **{term: 1.0})
    plain, *_ = make_problem("ns", condition="image")
    tasks = make_tasks(SCHED, prob.z_dim, seed=6)
    tasks["noise"]["other"] = tasks["support"].roll(-1, 0)
    learner = _learners(prob)[name]
    meta = learner.init_meta(pg, pd)
    g_loop, _ = loop_checked_by_vmap(learner, meta, tasks)
    g_plain, _ = meta_gradients(_learners(plain)[name], meta, tasks, "loop")
    assert max_diff(g_loop, g_plain, (group,)) > 1e-6


def test_joint_pretraining_is_the_plain_gan_gradient_on_all_real_images():
    prob, pg, pd = make_problem("ns")
    task = {k: (v[0] if k != "noise" else {n: t[0] for n, t in v.items()}) for k, v in make_tasks(SCHED, prob.z_dim).items()}
    grads, _ = Joint(prob, SCHED, 0.1, 0.1).task_grads({"g": pg, "d": pd}, task)
    real = torch.cat([task["support"], task["query"]])
    z = torch.cat([task["noise"]["z_d"][0, 0], task["noise"]["z_o"]])
    pd_ = {k: v.clone().requires_grad_(True) for k, v in pd.items()}
    fake = prob.generate(pg, z, task["support"]).detach()
    loss, _ = prob.d_loss(pd_, real, fake, torch.zeros(len(real), dtype=torch.float64), task["support"])
    loss.backward()
    for k in pd:
        torch.testing.assert_close(grads["d"][k], pd_[k].grad)


def test_diversity_term_is_added_to_every_generator_loss_and_raises_the_noise_response():
    """loss.diversity: each of G's losses gains -w min(mean|G(z) - G(-z)| / mean|2z|, tau) for the same
    references; D's losses are unchanged; a gradient step on the term alone makes G's samples move more with z."""
    from metagan import losses
    prob, pg, pd = make_problem("ns", condition="image", diversity=0.7)
    plain, *_ = make_problem("ns", condition="image")
    support = make_tasks(SCHED, prob.z_dim, seed=7)["support"][0]
    z = torch.randn(1, prob.z_dim, dtype=torch.float64)  # one sample: -z still differs from z
    fake, fake2 = prob.generate(pg, z, support), prob.generate(pg, -z, support)
    ratio = (fake - fake2).abs().mean() / (2 * z).abs().mean()
    assert 0 < ratio < 0.5  # below tau, so the term is live
    torch.testing.assert_close(prob.g_loss(pg, pd, z, support), plain.g_loss(pg, pd, z, support) - 0.7 * ratio)
    noise = {"z_o": torch.randn(Q, prob.z_dim, dtype=torch.float64), "eps_o": torch.rand(Q, dtype=torch.float64)}
    query = make_tasks(SCHED, prob.z_dim, seed=8)["query"][0]
    (ld, lg), _ = prob.outer_losses(pg, pd, support, query, noise)
    (ld0, lg0), _ = plain.outer_losses(pg, pd, support, query, noise)
    torch.testing.assert_close(ld, ld0)
    f, f2 = prob.generate(pg, noise["z_o"], support), prob.generate(pg, -noise["z_o"], support)
    torch.testing.assert_close(lg, lg0 + 0.7 * losses.diversity_term(f, f2, noise["z_o"], -noise["z_o"], 0.5))
    both, _ = prob.own_losses_sum({"g": pg, "d": pd}, support, query, noise)
    torch.testing.assert_close(both, ld + lg)
    # clamped at tau: no reward (and no gradient) beyond it
    assert losses.diversity_term(fake, fake2, z, -z, 1e-6).item() == -1e-6
    # one step down the term's gradient raises the ratio
    g = torch.func.grad(lambda p: losses.diversity_term(prob.generate(p, z, support), prob.generate(p, -z, support),
                                                        z, -z, 0.5))(pg)
    moved = {k: pg[k] - 0.1 * g[k] for k in pg}
    new = (prob.generate(moved, z, support) - prob.generate(moved, -z, support)).abs().mean() / (2 * z).abs().mean()
    assert new > ratio


@pytest.mark.parametrize("g_affine", [0.0, 0.25])
@pytest.mark.parametrize("name", ["maml", "fomaml", "metasgd", "metasgd-fo", "reptile", "joint"])
def test_warp_generator_meta_gradients_reach_its_encoder_and_vmap_equals_loop(name, g_affine):
    """The warp generator (model.condition=image): vmap = loop for every learner, second order included; the
    meta-gradient reaches the encoder of the reference and the layer that reads z; the same latents give other
    images for another support set."""
    prob, pg, pd = make_problem("ns", condition="image", g_affine=g_affine)
    tasks = make_tasks(SCHED, prob.z_dim, seed=10)
    learner = _learners(prob)[name]
    g_loop, _ = loop_checked_by_vmap(learner, learner.init_meta(pg, pd), tasks)
    assert all(float(g_loop["g"][k].abs().max()) > 0 for k in ("enc1.weight", "enc2.weight", "fc.weight"))
    z = torch.randn(4, prob.z_dim, dtype=torch.float64)
    assert not torch.allclose(prob.generate(pg, z, tasks["support"][0]), prob.generate(pg, z, tasks["support"][1]))


def test_recon_term_is_the_cvae_loss_of_the_posterior_and_adds_to_the_generators_query_loss_only():
    """loss.recon: G's query losses gain recon x (L1 + L1 of blurs) of each real image against its reference warped
    by z = mu + sigma eps from the posterior encoder, + recon_kl x KL(q || N(0, I)); D's losses are unchanged; the
    rest of the generator initialises as without the encoder."""
    from metagan import losses
    from metagan.meta.problem import call_module
    prob, pg, pd = make_problem("ns", condition="image", g_affine=0.25, recon=2.0)
    plain, *_ = make_problem("ns", condition="image", g_affine=0.25)
    cfg = dataclasses.replace(get_preset("tiny").model, condition="image", g_affine=0.25)
    built = []
    for posterior in (True, False):
        torch.manual_seed(3)
        built.append(params_of(build_models(cfg, SHAPE, posterior)[0]))
    assert {k for k in built[0] if not k.startswith("post.")} == built[1].keys()
    assert all(torch.equal(built[0][k], built[1][k]) for k in built[1])
    assert {k for k in pg if k.startswith("post.")}
    pg0 = {k: v for k, v in pg.items() if not k.startswith("post.")}
    t = make_tasks(SCHED, prob.z_dim, seed=11)
    support, query = t["support"][0], t["query"][0]
    noise = {"z_o": t["noise"]["z_o"][0], "eps_o": t["noise"]["eps_o"][0]}
    (ld, lg), _ = prob.outer_losses(pg, pd, support, query, noise)
    (ld0, lg0), _ = plain.outer_losses(pg0, pd, support, query, noise)
    torch.testing.assert_close(ld, ld0)
    ref = support[torch.arange(Q) % K]
    mu, logvar = call_module(prob.gen, pg, None, ref, encode=query)
    rec = call_module(prob.gen, pg, mu + torch.exp(0.5 * logvar) * noise["z_o"].flip(0), ref)
    l1 = (rec - query).abs().mean() + (losses.blur(rec) - losses.blur(query)).abs().mean()
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
    assert float(kl) > 0
    torch.testing.assert_close(lg, lg0 + 2.0 * l1 + 0.01 * kl)
    g = torch.func.grad(lambda p: prob.recon_term(p, query, support, noise["z_o"].flip(0)))(pg)
    assert all(float(g[k].abs().max()) > 0 for k in pg if k.startswith("post.") or k in ("fc.weight", "flow.weight"))


def test_blur_keeps_the_background_and_spreads_a_stroke():
    from metagan.losses import blur
    x = -torch.ones(1, 1, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(blur(x), x)
    x[0, 0, 4, 4] = 1.0
    y = blur(x)
    assert float(y.sum() + 81) == pytest.approx(2.0)  # the ink (x + 1) is conserved away from the border
    assert -1 < float(y[0, 0, 4, 5]) < float(y[0, 0, 4, 4]) < 1


@pytest.mark.parametrize("name", ["maml", "fomaml", "metasgd-fo", "joint"])
def test_recon_term_vmap_equals_loop_and_trains_the_posterior(name):
    prob, pg, pd = make_problem("ns", condition="image", g_affine=0.25, recon=1.0)
    tasks = make_tasks(SCHED, prob.z_dim, seed=12)
    learner = _learners(prob)[name]
    g_loop, _ = loop_checked_by_vmap(learner, learner.init_meta(pg, pd), tasks)
    assert all(float(g_loop["g"][k].abs().max()) > 0 for k in pg if k.startswith("post."))


def test_recon_needs_the_warp_generator():
    from metagan.config import apply_overrides, validate
    from metagan.errors import ConfigError
    validate(apply_overrides(get_preset("tiny"), ["model.condition=image", "loss.recon=1"]))
    with pytest.raises(ConfigError, match="loss.recon"):
        validate(apply_overrides(get_preset("tiny"), ["loss.recon=1"]))
    with pytest.raises(ConfigError, match="Reptile"):
        validate(apply_overrides(get_preset("tiny"), ["model.condition=image", "loss.recon=1", "meta.learner=reptile"]))


def test_warp_generator_second_order_runs_under_vmap():
    """Second order through the warp generator: meta.vectorize=vmap is a valid config, and vmap's meta-gradient
    equals the loop's with a gradient penalty too (third derivatives through the resampler)."""
    from metagan.config import apply_overrides, validate
    cfg = apply_overrides(get_preset("tiny"), ["model.condition=image", "meta.learner=maml", "task.meta_batch=2",
                                               "meta.vectorize=vmap"])
    validate(cfg)
    prob, pg, pd = make_problem("wgan-gp", condition="image", g_affine=0.25)
    g, _ = loop_checked_by_vmap(MAML(prob, SCHED, 0.1, 0.1), {"g": pg, "d": pd}, make_tasks(SCHED, prob.z_dim))
    assert all(torch.isfinite(v).all() for v in g["g"].values())


@pytest.mark.parametrize("condition", ["image", "none"])
def test_outer_mmd_adds_the_match_in_the_given_discriminators_features_to_the_generators_query_loss(condition):
    """loss.outer_mmd: G's query loss gains w MMD^2(features of (fake, reference) pairs, features of (query,
    reference) pairs) under the discriminator d_feat (the meta-learners pass the meta-discriminator), D's loss is
    unchanged; outer_adv=0 drops the adversarial term."""
    from torch.func import functional_call
    from metagan import losses
    prob, pg, pd = make_problem("ns", condition=condition, outer_mmd=0.5)
    plain, *_ = make_problem("ns", condition=condition)
    only, *_ = make_problem("ns", condition=condition, outer_mmd=0.5, outer_adv=0.0)
    tasks = make_tasks(SCHED, prob.z_dim, seed=12)
    support, query = tasks["support"][0], tasks["query"][0]
    noise = {"z_o": tasks["noise"]["z_o"][0], "eps_o": tasks["noise"]["eps_o"][0]}
    d_meta = {k: v + 0.1 * torch.randn_like(v) for k, v in pd.items()}  # not the adapted discriminator
    (ld, lg), aux = prob.outer_losses(pg, pd, support, query, noise, d_feat=d_meta)
    (ld0, lg0), aux0 = plain.outer_losses(pg, pd, support, query, noise, d_feat=d_meta)
    fake = prob.generate(pg, noise["z_o"], support)
    refs = support[torch.arange(Q) % K] if condition == "image" else support
    feats = [functional_call(prob.disc, d_meta, (x, refs), {"features": True}) for x in (fake, query)]
    m = losses.mmd2(*feats)
    assert m.abs() > 1e-6
    torch.testing.assert_close(ld, ld0)
    torch.testing.assert_close(lg, lg0 + 0.5 * m)
    torch.testing.assert_close(aux["mmd"], m)
    assert "mmd" not in aux0
    torch.testing.assert_close(only.outer_losses(pg, pd, support, query, noise, d_feat=d_meta)[0][1], 0.5 * m)
    both, _ = prob.own_losses_sum({"g": pg, "d": pd}, support, query, noise, d_feat=d_meta)
    fl = prob.discriminate(pd, fake, prob.refs(support, Q))
    torch.testing.assert_close(both, ld + losses.ns_g_loss(fl) + 0.5 * m)


def _with_and_without(prob, plain, name, pg, pd, seed):
    """Meta-gradients of learner `name` on one meta-batch with a loss option (prob; by the loop, checked equal to
    vmap's) and without it (plain): (meta, (grads, aux) with, (grads, aux) without)."""
    tasks = make_tasks(SCHED, prob.z_dim, seed=seed)
    learner = _learners(prob)[name]
    meta = learner.init_meta(pg, pd)
    with_ = loop_checked_by_vmap(learner, meta, tasks)
    return meta, with_, meta_gradients(_learners(plain)[name], meta, tasks, "loop")


@pytest.mark.parametrize("name", ["maml", "fomaml", "metasgd", "metasgd-fo", "joint"])
def test_outer_mmd_reaches_the_generator_only_and_vmap_equals_loop(name):
    """loss.outer_mmd is a term of G's query loss: it changes the meta-gradient of G's groups and leaves D's
    exactly as without it."""
    prob, pg, pd = make_problem("ns", condition="image", outer_mmd=1.0)
    plain, *_ = make_problem("ns", condition="image")
    meta, (g_loop, aux), (g_plain, aux0) = _with_and_without(prob, plain, name, pg, pd, seed=13)
    own = tuple(gp for gp in meta if gp.endswith("g"))
    other = tuple(gp for gp in meta if not gp.endswith("g"))
    assert max_diff(g_loop, g_plain, other) < 1e-12
    assert max_diff(g_loop, g_plain, own) > 1e-6
    assert "mmd" in aux and "mmd" not in aux0


def test_outer_mmd_and_outer_adv_are_checked():
    from metagan.config import ConfigError, apply_overrides, validate
    cfg = get_preset("omniglot-fomaml")  # outer_mmd off, outer_adv 1
    validate(apply_overrides(cfg, ["loss.outer_mmd=10", "loss.outer_adv=0"]))
    for bad, match in ((["loss.outer_mmd=1", "meta.learner=reptile"], "Reptile has none"),
                       (["loss.outer_mmd=1", "task.q_query=1"], "q_query to at least 2"),
                       (["loss.outer_adv=0"], "without a query loss"),
                       (["loss.outer_mmd=-1"], "non-negative")):
        with pytest.raises(ConfigError, match=match):
            validate(apply_overrides(cfg, bad))


@pytest.mark.parametrize("condition", ["image", "none"])
def test_one_support_image_never_teaches_d_that_a_copy_is_real(condition):
    """With K = 1 a paired model's real pair would be the image beside itself: its D is left as it is while G
    adapts. Unpaired models (and paired ones with K = 2) adapt D as usual."""
    prob, pg, pd = make_problem("ns", condition=condition)
    for k in (1, 2):
        support = torch.rand(k, *SHAPE, dtype=torch.float64) * 2 - 1
        noise = sample_noise(1, SCHED, k, 1, prob.z_dim, torch.Generator().manual_seed(0), torch.float64)
        noise = {key: v[0] for key, v in noise.items()}
        qg, qd, _ = prob.inner_loop(pg, pd, dict.fromkeys(pg, 0.1), dict.fromkeys(pd, 0.1), support, noise, SCHED,
                                    first_order=True)
        d_moved = max_diff({"d": qd}, {"d": pd}, ("d",))
        assert (d_moved == 0) == (k == 1 and condition != "none"), (condition, k, d_moved)
        assert max_diff({"g": qg}, {"g": pg}, ("g",)) > 0
