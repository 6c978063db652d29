"""The step-by-step and compiled adaptation paths against the inner loop itself (the default path)."""
import dataclasses
import functools

import pytest
import torch

from metagan.adapt import adapt_params, compiled_step, one_step
from metagan.baselines import scratch_model
from metagan.config import apply_overrides, get_preset


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model: one thread (metagan.threads; on a shared machine two threads make these tests 50x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model():
    """A paired Meta-SGD model with per-tensor rates and R1, as the shipped default, at the tiny preset's size."""
    cfg = apply_overrides(get_preset("tiny"), ["meta.learner=metasgd", "meta.rates=tensor", "model.condition=image",
                                               "loss.r1_gamma=1.0", "loss.diversity=0.3", "meta.n_g=2"])
    return scratch_model(cfg)


def _support(model, k=3):
    return torch.rand(k, *model.system.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_step_by_step_is_the_inner_loop_bit_for_bit():
    """Slicing the noise per step and running one step at a time is the same computation as the whole loop."""
    model = _model()
    m, support = model.system.cfg.meta, _support(model)
    step = functools.partial(one_step, model.system.problem, m.n_d, m.n_g)
    ref = adapt_params(model.system, model.meta, support, 4, torch.Generator().manual_seed(5))
    out = adapt_params(model.system, model.meta, support, 4, torch.Generator().manual_seed(5), step_fn=step)
    for r, o in zip(ref, out):
        assert all(torch.equal(r[k], o[k]) for k in r)
    moved = [k for k in ref[1] if not torch.equal(ref[1][k], model.meta["d"][k])]
    assert moved  # the steps did update the discriminator


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own import
def test_compiled_adaptation_samples_equal_the_default_path():
    """MetaGAN.compile: the same samples as the eager default path, to float rounding (traced through
    torch.compile; the aot_eager backend skips the C++ code generation that makes inductor take minutes here)."""
    model = _model()
    fast = dataclasses.replace(model)
    fast.step_fn = compiled_step(model.system, backend="aot_eager")
    support = _support(model, 5)
    ref = model.adapt(support, 3, torch.Generator().manual_seed(2)).sample(16, torch.Generator().manual_seed(3))
    out = fast.adapt(support, 3, torch.Generator().manual_seed(2)).sample(16, torch.Generator().manual_seed(3))
    unadapted = model.adapt(support, 0).sample(16, torch.Generator().manual_seed(3))
    assert (ref - unadapted).abs().max() > 1e-3  # adaptation changes the samples, so the comparison means something
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)
    assert model.step_fn is None and dataclasses.replace(model).compile().step_fn is not None
