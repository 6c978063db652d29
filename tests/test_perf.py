"""Speed benchmarks: the autograd reference computes our meta-gradients (every loss term of the presets it times,
or a refusal), the optimised learners compute the reference ones, FLOPs are counted, and the perf commands print
the documented JSON lines (never asserting times)."""
import dataclasses
import json

import pytest
import torch
from torch.func import vjp

from metagan.errors import ConfigError
from metagan.perf.baseline import autograd_meta_gradients
from metagan.perf.common import count_flops
from metagan.perf.memory import measure_in_subprocess, slope
from metagan.cli import main
from metagan.config import LossConfig, apply_overrides, get_preset
from metagan.functional import detach, params_of
from metagan.meta import FOMAML, MAML, GanProblem, InnerSchedule, MetaSGD, Reptile, meta_gradients, sample_noise
from metagan.meta.base import player_grads
from metagan.models import build_models
from metagan.system import build_system
from metagan.train import vectorize_mode

SHAPE = (1, 8, 8)
K, Q, B = 2, 3, 2
SCHED = InnerSchedule(2, 1, 2)


def make_problem(kind="ns", r1=0.0, condition="none", mismatch=0.0, diversity=0.0, outer_mmd=0.0, outer_adv=1.0):
    cfg = dataclasses.replace(get_preset("tiny").model, condition=condition)
    torch.manual_seed(0)
    gen, disc = build_models(cfg, SHAPE)
    gen, disc = gen.double(), disc.double()
    loss = LossConfig(kind=kind, r1_gamma=r1, mismatch=mismatch, diversity=diversity, diversity_tau=0.5,
                      outer_mmd=outer_mmd, outer_adv=outer_adv)
    if condition == "image":  # leave the warp's zero initialisation, where the displacement field ignores its input
        with torch.no_grad():
            gen.flow.weight.normal_(0, 0.3)
    return GanProblem(gen, disc, loss), params_of(gen), params_of(disc)


def make_tasks(z_dim, seed=0, other=False):
    g = torch.Generator().manual_seed(seed)
    tasks = {"support": torch.rand(B, K, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
             "query": torch.rand(B, Q, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1,
             "noise": sample_noise(B, SCHED, K, Q, z_dim, g, torch.float64)}
    if other:
        tasks["noise"]["other"] = tasks["support"].roll(-1, 0)
    return tasks


def max_diff(a, b):
    return max(float((a[gp][k] - b[gp][k]).abs().max()) for gp in a for k in a[gp])


LEARNERS = {"maml": lambda p: MAML(p, SCHED, 0.1, 0.1), "fomaml": lambda p: FOMAML(p, SCHED, 0.1, 0.1),
            "reptile": lambda p: Reptile(p, SCHED, 0.1, 0.1), "metasgd": lambda p: MetaSGD(p, SCHED, 0.1, 0.1),
            "metasgd-fo": lambda p: MetaSGD(p, SCHED, 0.1, 0.1, first_order=True)}


@pytest.mark.parametrize("kind, r1, condition, mismatch, diversity, outer_mmd, outer_adv", [
    ("ns", 1.0, "none", 0.0, 0.0, 0.0, 1.0), ("wgan-gp", 0.0, "none", 0.0, 0.0, 0.0, 1.0),
    ("hinge", 0.0, "none", 0.0, 0.0, 0.0, 1.0), ("wgan-gp", 1.0, "image", 0.0, 0.0, 0.0, 1.0),
    ("ns", 1.0, "image", 0.5, 0.3, 0.0, 1.0),  # the terms of the omniglot-<learner> presets
    ("ns", 1.0, "image", 0.5, 0.3, 10.0, 0.0),  # omniglot-metasgd's query loss: MMD^2, no adversarial term
    ("hinge", 0.0, "none", 0.0, 0.0, 2.0, 0.5)])  # both query terms at once, unconditional
@pytest.mark.parametrize("name", list(LEARNERS))
def test_autograd_baseline_computes_the_same_meta_gradient(name, kind, r1, condition, mismatch, diversity, outer_mmd,
                                                           outer_adv):
    prob, pg, pd = make_problem(kind, r1, condition, mismatch, diversity, outer_mmd, outer_adv)
    learner = LEARNERS[name](prob)
    meta = learner.init_meta(pg, pd)
    tasks = make_tasks(prob.z_dim, other=mismatch > 0)
    ours, _ = meta_gradients(learner, meta, tasks, "loop")
    theirs = autograd_meta_gradients(learner, meta, tasks)
    assert theirs.keys() == ours.keys()
    assert max_diff(ours, theirs) < 1e-10
    assert max(float(v.abs().max()) for p in ours.values() for v in p.values()) > 1e-3  # not all zero


@pytest.mark.parametrize("rates", ["step", "tensor"])
def test_autograd_baseline_takes_each_inner_steps_own_rates(rates):
    """Meta-SGD with per-step rates (omniglot-metasgd's meta.rates=step): the reference reads step t's rates at
    inner step t, as the engine does; with the two steps' rates made different, a reference that used one map
    for both steps would not match. Per-tensor rates (pigcvp-metasgd's), first order too: the engine's closed-form
    rate gradients, summed over each tensor, equal the reference's."""
    prob, pg, pd = make_problem("ns", 1.0, "image", 0.5, 0.3, 10.0, 0.0)
    learner = MetaSGD(prob, SCHED, 0.1, 0.1, first_order=True, per_step=rates == "step", per_tensor=rates == "tensor")
    meta = learner.init_meta(pg, pd)
    scale = torch.tensor([1.0, 3.0]) if rates == "step" else torch.tensor(2.0)
    for group in ("lr_g", "lr_d"):
        meta[group] = {k: v * scale.to(v.dtype) for k, v in meta[group].items()}
    tasks = make_tasks(prob.z_dim, other=True)
    ours, _ = meta_gradients(learner, meta, tasks, "loop")
    assert max_diff(ours, autograd_meta_gradients(learner, meta, tasks)) < 1e-10


def test_autograd_baseline_follows_the_query_loss_weights():
    """outer_mmd and outer_adv change the generator's meta-gradient, and the reference follows each change: a
    reference that left either term out would match the engine at the defaults only."""
    grads = {}
    for weights in [(0.0, 1.0), (10.0, 1.0), (10.0, 0.0)]:
        prob, pg, pd = make_problem("ns", 1.0, "image", 0.5, 0.3, *weights)
        tasks = make_tasks(prob.z_dim, other=True)
        learner = MetaSGD(prob, SCHED, 0.1, 0.1, first_order=True)
        meta = learner.init_meta(pg, pd)
        grads[weights] = autograd_meta_gradients(learner, meta, tasks)
        assert max_diff(meta_gradients(learner, meta, tasks, "loop")[0], grads[weights]) < 1e-10
    assert max_diff({"g": grads[(0.0, 1.0)]["g"]}, {"g": grads[(10.0, 1.0)]["g"]}) > 1e-6
    assert max_diff({"g": grads[(10.0, 1.0)]["g"]}, {"g": grads[(10.0, 0.0)]["g"]}) > 1e-6
    assert max_diff({"d": grads[(0.0, 1.0)]["d"]}, {"d": grads[(10.0, 0.0)]["d"]}) == 0  # D's loss has neither


def test_autograd_baseline_refuses_a_loss_term_it_does_not_compute():
    """A loss option the reference does not implement, switched on, is refused by name, never timed silently."""
    Extended = dataclasses.make_dataclass("Extended", [("new_term", float, 0.0)], bases=(LossConfig,), frozen=True)
    prob, pg, pd = make_problem()
    learner = FOMAML(prob, SCHED, 0.1, 0.1)
    learner.problem.loss = Extended(new_term=0.0)  # at its default: nothing to leave out
    autograd_meta_gradients(learner, {"g": pg, "d": pd}, make_tasks(prob.z_dim))
    learner.problem.loss = Extended(new_term=1.0)
    with pytest.raises(ConfigError, match="loss.new_term=1.0"):
        autograd_meta_gradients(learner, {"g": pg, "d": pd}, make_tasks(prob.z_dim))


def test_fomaml_single_backward_equals_each_players_gradient_of_its_own_loss():
    """FOMAML takes one grad of own_losses_sum; the reference is player_grads over outer_losses."""
    prob, pg, pd = make_problem("wgan-gp", r1=1.0)
    tasks = make_tasks(prob.z_dim)
    task = {k: (v[0] if k != "noise" else {n: t[0] for n, t in v.items()}) for k, v in tasks.items()}
    learner = FOMAML(prob, SCHED, 0.1, 0.1)
    grads, aux = learner.task_grads({"g": pg, "d": pd}, task)
    lr_g, lr_d = learner.rates({"g": pg, "d": pd})
    ag, ad, _ = prob.inner_loop(pg, pd, lr_g, lr_d, task["support"], task["noise"], SCHED, True)
    ref, ref_aux = player_grads(lambda p: prob.outer_losses(p["g"], p["d"], task["support"], task["query"],
                                                            task["noise"]), {"g": detach(ag), "d": detach(ad)})
    assert max_diff(grads, ref) < 1e-12
    assert float(aux["d_loss"]) == pytest.approx(float(ref_aux["d_loss"]), abs=1e-12)
    assert float(aux["g_loss"]) == pytest.approx(float(ref_aux["g_loss"]), abs=1e-12)


def test_player_grads_vectorised_over_cotangents_equals_two_backward_passes():
    prob, pg, pd = make_problem("ns")
    tasks = make_tasks(prob.z_dim)
    task = {k: (v[0] if k != "noise" else {n: t[0] for n, t in v.items()}) for k, v in tasks.items()}
    learner = MetaSGD(prob, SCHED, 0.1, 0.1)
    meta = learner.init_meta(pg, pd)
    fn = lambda m: learner._adapt_and_score(m, task)  # noqa: E731
    grads, _ = player_grads(fn, meta)
    (ld, lg), vjp_fn, _ = vjp(fn, meta, has_aux=True)
    (gd,) = vjp_fn((torch.ones_like(ld), torch.zeros_like(ld)))
    (gg,) = vjp_fn((torch.zeros_like(ld), torch.ones_like(ld)))
    ref = {group: (gd if group.endswith("d") else gg)[group] for group in meta}
    assert max_diff(grads, ref) < 1e-12
    assert max_diff({"x": gd["d"]}, {"x": gg["d"]}) > 1e-6  # the two losses' gradients really differ


@pytest.mark.parametrize("preset, overrides, want", [
    ("tiny", [], "vmap"), ("digits-demo", [], "vmap"), ("omniglot-fomaml", [], "vmap"),
    ("omniglot-reptile", [], "vmap"), ("omniglot-figr", [], "vmap"), ("omniglot-dawson", [], "vmap"), ("omniglot-maml", [], "vmap"), ("omniglot-metasgd", [], "vmap"),
    ("omniglot-metasgd", ["meta.first_order=false"], "vmap"), ("tiny", ["meta.learner=maml"], "vmap"),
    # second order on the CPU: the loop for large unconditional networks and for the warp beyond meta-batch 8
    ("omniglot-dawson", ["meta.learner=maml"], "loop"), ("omniglot-maml", ["task.meta_batch=16"], "loop"),
    ("omniglot-dawson", ["meta.learner=maml", "train.device=cuda"], "vmap"),
    ("omniglot-dawson", ["meta.learner=maml", "meta.vectorize=vmap"], "vmap"), ("tiny", ["meta.vectorize=loop"], "loop"),
    ("omniglot-maml", ["train.device=cuda", "task.meta_batch=16"], "vmap"),
])
def test_vectorize_auto_picks_what_the_measurements_say(preset, overrides, want):
    assert vectorize_mode(build_system(apply_overrides(get_preset(preset), overrides))) == want


def test_flop_counter_counts_matmuls_and_survives_autograd_inside():
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    assert count_flops(lambda: a @ b) == 2 * 64 * 32 * 16
    prob, pg, pd = make_problem("wgan-gp", r1=1.0)  # penalties take torch.autograd.grad inside the count
    learner = MAML(prob, SCHED, 0.1, 0.1)
    assert count_flops(lambda: autograd_meta_gradients(learner, {"g": pg, "d": pd}, make_tasks(prob.z_dim))) > 0


def _json_lines(text):
    return [json.loads(line) for line in text.strip().splitlines()]


def test_perf_throughput_prints_a_json_line_per_variant(capsys):
    assert main(["perf", "throughput", "--preset", "tiny", "--meta-batch", "2", "--reps", "1",
                 "--threads", "1", "--set", "meta.learner=maml"]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert records[0]["bench"] == "matmul" and records[0]["flops_per_s"] > 0
    rows = {r["variant"]: r for r in records[1:]}
    assert set(rows) == {"autograd-loop", "loop", "vmap"}
    for r in rows.values():
        assert {"learner", "meta_batch", "variant", "tasks_per_s", "ratio_vs_loop", "median_ms", "flops",
                "flops_fraction", "max_rel_diff"} <= r.keys()
        assert r["learner"] == "maml" and r["order"] == "second" and r["meta_batch"] == 2
        assert r["tasks_per_s"] > 0 and r["flops"] > 0 and 0 < r["flops_fraction"]
        assert r["max_rel_diff"] < 1e-4  # float32: every variant computes the baseline's meta-gradient
    assert rows["autograd-loop"]["ratio_vs_loop"] == 1.0
    assert [v for v, r in rows.items() if r["auto"]] == ["vmap"]


def test_perf_throughput_measures_second_order_vmap_through_the_warp_generator(capsys):
    """Second order through the warp generator: vmap is measured beside the loops and agrees with the reference;
    auto takes it on this small model."""
    assert main(["perf", "throughput", "--preset", "tiny", "--meta-batch", "2", "--reps", "1", "--threads", "1",
                 "--set", "meta.learner=maml", "--set", "model.condition=image"]) == 0
    rows = {r["variant"]: r for r in _json_lines(capsys.readouterr().out)[1:]}
    assert set(rows) == {"autograd-loop", "loop", "vmap"} and rows["vmap"]["tasks_per_s"] > 0
    assert rows["vmap"]["auto"] and rows["vmap"]["max_rel_diff"] < 1e-4 and rows["loop"]["max_rel_diff"] < 1e-4


def test_perf_adapt_trains_a_model_and_splits_the_latency(capsys, tmp_path):
    assert main(["perf", "adapt", "--preset", "tiny", "--train-steps", "2", "--reps", "2", "--threads", "1"]) == 0
    (r,) = _json_lines(capsys.readouterr().out)  # the model's own adaptation: tiny's 1 inner step
    assert r["bench"] == "adapt" and r["k_shot"] == 5 and r["num"] == 64 and r["inner_steps"] == 1
    assert r["train_steps"] == 2 and r["adapt_ms"] > 0 and r["sample_ms"] > 0
    assert 0 < r["adapt_fraction"] < 1 and r["median_ms"] >= r["min_ms"]


def test_memory_is_measured_in_a_fresh_process():
    r = measure_in_subprocess({"preset": "tiny", "meta_batch": 2, "inner_steps": 1, "variant": "loop",
                               "device": "cpu", "threads": 1})
    assert r["bench"] == "memory" and r["measure"] == "ru_maxrss" and r["learner"] == "fomaml"
    assert r["peak_mb"] > 50 and r["step_mb"] >= 0  # the interpreter and torch alone hold more than 50 MB
    assert slope([1, 2, 4], [10.0, 12.0, 16.0]) == pytest.approx(2.0)


def test_memory_sweep_skips_one_task_meta_batches_where_mismatch_needs_two(monkeypatch):
    from metagan.perf import memory as mem
    seen = []

    def fake(spec):
        seen.append(spec["meta_batch"])
        return {"bench": "memory", "learner": "fomaml", "step_mb": float(spec["meta_batch"]), **spec}
    monkeypatch.setattr(mem, "measure_in_subprocess", fake)
    recs = list(mem.memory(["omniglot-fomaml"], [1, 2, 4], [5], variants=["loop"]))
    assert recs[0]["bench"] == "memory-skipped" and recs[0]["meta_batch"] == 1
    assert seen == [2, 4, 8] and recs[-1]["mb_per_task"] == pytest.approx(1.0)
    seen.clear()
    list(mem.memory(["tiny"], [1, 2], [1], variants=["loop"]))
    assert seen == [1, 2, 8]
    seen.clear()  # the warp MAML preset: both ways are measured, second order runs under vmap too
    recs = list(mem.memory(["omniglot-maml"], [2], [5], variants=["loop", "vmap"]))
    assert seen == [2, 8, 2, 8] and not [r for r in recs if r["bench"] == "memory-skipped"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_perf_on_cuda_without_a_gpu_says_so(capsys):
    assert main(["perf", "throughput", "--device", "cuda", "--preset", "tiny"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("channels, size, norm", [(1, 28, "none"), (3, 16, "group"), (1, 8, "layer")])
def test_fast_generator_layers_compute_the_reference_generator(channels, size, norm):
    """ConvGenerator's transposed-convolution upsampling and depthwise output layer equal the plain
    upsample-then-convolve network they stand for, in float64."""
    import torch.nn.functional as F

    cfg = dataclasses.replace(get_preset("tiny").model, g_width=6, norm=norm)
    torch.manual_seed(0)
    gen, _ = build_models(cfg, (channels, size, size))
    gen = gen.double()
    z = torch.randn(5, gen.z_dim, dtype=torch.float64)
    context = torch.rand(2, channels, size, size, dtype=torch.float64)

    def reference(z):
        act = lambda x: F.leaky_relu(x, 0.2)  # noqa: E731
        h = act(gen.fc(z)).view(z.shape[0], -1, gen.s0, gen.s0)
        h = act(gen.norm1(gen.conv1(F.interpolate(h, scale_factor=2.0, mode="nearest"))))
        h = act(gen.norm2(gen.conv2(F.interpolate(h, scale_factor=2.0, mode="nearest"))))
        return torch.tanh(gen.out(h))

    torch.testing.assert_close(gen(z, context), reference(z), rtol=0, atol=1e-12)
    g_fast = torch.autograd.grad(gen(z, context).pow(2).sum(), list(gen.parameters()))
    g_ref = torch.autograd.grad(reference(z).pow(2).sum(), list(gen.parameters()))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_perf_adapt_times_routes_beside_the_default(capsys):
    """Each route gets its own record, with its speed-up over the default path and its samples' distance from the
    default's: channels-last computes the same function, half-steps a different one."""
    assert main(["perf", "adapt", "--preset", "tiny", "--train-steps", "2", "--reps", "1", "--threads", "1",
                 "--set", "train.adapt_steps=4", "--routes", "half-steps", "channels-last"]) == 0
    rows = {r["route"]: r for r in _json_lines(capsys.readouterr().out)}
    assert rows["default"]["inner_steps"] == 4  # --set reached the brief training
    assert list(rows) == ["default", "half-steps", "channels-last"]
    assert rows["default"]["speedup_vs_default"] == 1.0 and rows["default"]["max_abs_diff_vs_default"] == 0.0
    assert rows["channels-last"]["max_abs_diff_vs_default"] < 1e-5
    assert rows["half-steps"]["max_abs_diff_vs_default"] > 1e-3 and rows["half-steps"]["speedup_vs_default"] > 0


def test_perf_adapt_refuses_an_unknown_route(capsys):
    assert main(["perf", "adapt", "--preset", "tiny", "--train-steps", "1", "--reps", "1",
                 "--routes", "warp-speed"]) == 2
    assert "unknown adaptation route" in capsys.readouterr().err


def test_perf_threads_compares_each_count_with_one_thread(capsys):
    assert main(["perf", "threads", "--preset", "tiny", "--threads", "2", "--reps", "1"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [(r["bench"], r["threads"]) for r in rows] == [("threads", 1), ("threads", 2)]
    assert rows[0]["speedup_vs_1"] == 1.0 and rows[0]["cpu_ratio_vs_1"] == 1.0
    assert all(r["wall_ms"] > 0 and r["cpu_ms"] > 0 and r["sample_mflops"] > 0 for r in rows)
    assert torch.get_num_threads() == 2  # thread_scaling leaves the count it found (--threads set it)
