"""The morph generator (model.condition=morph): a sample is its reference warped towards the other supports."""
import pytest
import torch

from metagan.config import ConfigError, apply_overrides, get_preset, validate
from metagan.errors import CheckpointError
from metagan.models import MorphGenerator, PairGenerator


def _perturbed(gen, keys=("flow.weight", "affine.weight", "reg_flow.weight", "reg_flow.bias"), scale=0.3):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name in keys:
                p.normal_(0, scale)
    return gen


def test_untrained_morph_generator_returns_its_reference_for_every_k():
    torch.manual_seed(0)
    g = MorphGenerator(8, 1, 8, 4, "group", 0.25)
    for k in (1, 2, 3):
        support = torch.rand(k, 1, 8, 8) * 2 - 1
        out = g(torch.randn(7, 8), support)
        torch.testing.assert_close(out, support[torch.arange(7) % k], atol=1e-5, rtol=0)


def test_morph_at_alpha_zero_is_the_warp_generator():
    """z_0 -> -inf draws alpha = 0: no morph, the sample is the warp generator's with the same weights."""
    torch.manual_seed(0)
    morph = _perturbed(MorphGenerator(8, 1, 8, 4, "group", 0.25))
    warp = PairGenerator(8, 1, 8, 4, "group", 0.25)
    warp.load_state_dict({k: v for k, v in morph.state_dict().items() if not k.startswith("reg")})
    support = torch.rand(3, 1, 8, 8) * 2 - 1
    z = torch.randn(5, 8)
    z[:, 0] = -40.0
    idx = torch.arange(5) % 3
    torch.testing.assert_close(morph(z, support), warp(z, support[idx]))
    z[:, 0] = 2.0  # alpha > 0: the registration fields move the samples
    assert (morph(z, support) - warp(z, support[idx])).abs().max() > 1e-3


def test_every_sample_reads_the_other_supports():
    torch.manual_seed(0)
    g = _perturbed(MorphGenerator(8, 1, 8, 4))
    support = torch.rand(3, 1, 8, 8) * 2 - 1
    z = torch.randn(6, 8)
    changed = support.clone()
    changed[2] = torch.rand(1, 8, 8) * 2 - 1
    diff = (g(z, support) - g(z, changed)).flatten(1).abs().amax(1)  # samples 0, 3 and 1, 4 have other references
    assert (diff[[0, 1, 3, 4]] > 1e-4).all()
    assert g(z, support[:1]).shape == (6, 1, 8, 8)  # K = 1: nothing to morph towards, still a sample


def test_registration_learns_to_carry_one_drawing_onto_another():
    """A few Adam steps on the registration loss align a stroke with its shifted copy (the loss the samples'
    morph field relies on); a registration that ignored its input, or a gradient that did not reach it, fails."""
    torch.manual_seed(0)
    x = -torch.ones(1, 1, 16, 16)
    x[..., 4:12, 6:8] = 1.0  # a vertical stroke
    support = torch.cat([x, x.roll(2, dims=-1)])  # and the same stroke two pixels to the right
    g = MorphGenerator(8, 1, 16, 8)
    opt = torch.optim.Adam([p for n, p in g.named_parameters() if n.startswith("reg")], lr=3e-3)
    first = float(g(None, support, registration=True))
    for _ in range(80):
        opt.zero_grad()
        loss = g(None, support, registration=True)
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first
    assert float(g(None, support[:1], registration=True)) == 0.0


def test_register_needs_the_morph_generator():
    base = get_preset("omniglot-joint")
    validate(apply_overrides(base, ["model.condition=morph", "loss.register=1"]))
    with pytest.raises(ConfigError, match="loss.register .* needs model.condition=morph"):
        validate(apply_overrides(base, ["loss.register=1"]))
    with pytest.raises(ConfigError, match="loss.register must be non-negative"):
        validate(apply_overrides(base, ["model.condition=morph", "loss.register=-1"]))


def test_warm_start_into_the_morph_generator_keeps_the_warp_weights(tmp_path):
    """train.init_from a warp model: every parameter it has is copied, the registration network starts at its
    initial values (so the first samples are the warp model's), and a model it does not fit is refused."""
    from metagan import checkpoint as ckpt
    from metagan.system import build_system
    from metagan.train import init_state, train, warm_start
    warp_run = train(apply_overrides(get_preset("tiny"), ["model.condition=image", "train.steps=2"]),
                     out_dir=tmp_path, progress=False)
    source = ckpt.load(ckpt.resolve(str(warp_run)))
    cfg = apply_overrides(get_preset("tiny"), ["model.condition=morph", "loss.register=1"])
    state = init_state(build_system(cfg))
    fresh = {k: v.detach().clone() for k, v in state.meta["g"].items()}
    warm_start(state, str(warp_run))
    source_g = source.ema["g"] if source.ema else source.meta["g"]
    for k, v in state.meta["g"].items():
        torch.testing.assert_close(v.detach(), source_g[k] if k in source_g else fresh[k])
    assert any(k.startswith("reg") for k in state.meta["g"])
    unconditional = init_state(build_system(get_preset("tiny")))
    with pytest.raises(CheckpointError, match="belongs to another model"):
        warm_start(unconditional, str(warp_run))
