"""The any-order bilinear resampler (metagan.models.resample) against torch's grid_sample, in float64."""
import pytest
import torch
from torch.func import grad, vmap
from torch.nn import functional as F

from metagan.models.resample import any_order_resampling, resample, sample


def grid_sample(x, grid):
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_case(seed=0, n=3, c=2, h=5, w=6, ho=4, wo=7, kinks=True):
    """An image (N, C, H, W) and a grid (N, Ho, Wo, 2) with random points inside and outside the image (up to 1.6
    times its extent), two far away, and with kinks=True rows of points exactly on pixel centres, on pixel edges
    and on the image's outer edges and the border beyond them, where bilinear interpolation has its kinks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    grid = torch.rand(n, ho, wo, 2, generator=g, dtype=torch.float64) * 3.2 - 1.6
    grid[-1, -1, :2] = torch.tensor([[50.0, -3.0], [-1e6, 1e6]], dtype=torch.float64)
    if not kinks:
        return x, grid
    k = torch.arange(7, dtype=torch.float64)
    grid[0, 0, :7, 0] = (2 * k + 1) / w - 1  # pixel k's centres (columns past w too)
    grid[0, 1, :7, 1] = 2 * k / h - 1 - 2 / h  # pixel edges, from one pixel above the image
    grid[0, 2, :7] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1 + 2 / w, 0.0], [-1 - 4 / w, 0.0],
                                   [0.0, -1 - 2 / h], [1 + 1 / w, 1 + 1 / h]], dtype=torch.float64)
    return x, grid


def test_forward_equals_grid_sample_inside_outside_and_on_pixel_centres_and_edges():
    x, grid = make_case()
    out = resample(x, grid)
    assert out.shape == (3, 2, 4, 7)
    torch.testing.assert_close(out, grid_sample(x, grid), rtol=0, atol=1e-13)
    assert out[-1, :, -1, :2].abs().max() == 0  # far outside: zeros
    inside = torch.rand(1, 6, 6, 2, dtype=torch.float64) * 1.6 - 0.8
    assert resample(x[:1], inside).abs().min() > 0  # and inside the image it really reads the pixels


def derivatives(fn, x, grid, v, u):
    """First derivatives of <fn(x, grid), v> w.r.t. (x, grid), and the gradient of <those, u> w.r.t. (x, grid)."""
    x, grid = x.detach().requires_grad_(True), grid.detach().requires_grad_(True)
    d1 = torch.autograd.grad((fn(x, grid) * v).sum(), (x, grid), create_graph=True)
    d2 = torch.autograd.grad(sum((a * b).sum() for a, b in zip(d1, u)), (x, grid))
    return [d.detach() for d in d1], list(d2)


def directions(x, grid, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape[0], x.shape[1], *grid.shape[1:3], generator=g, dtype=torch.float64)
    return v, [torch.randn(x.shape, generator=g, dtype=x.dtype), torch.randn(grid.shape, generator=g, dtype=x.dtype)]


@pytest.mark.parametrize("shape", [dict(), dict(n=2, c=1, h=28, w=28, ho=28, wo=28), dict(n=1, c=3, h=4, w=3)])
def test_first_and_second_derivatives_equal_grid_samples(shape):
    """Vector-Jacobian and Hessian-vector products w.r.t. image and grid at random points in and outside."""
    x, grid = make_case(1, kinks=False, **shape)
    v, u = directions(x, grid, 2)
    ours, theirs = derivatives(resample, x, grid, v, u), derivatives(grid_sample, x, grid, v, u)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert theirs[1][1].abs().max() > 1e-3  # the grid's second derivative is not zero: the comparison can fail


@pytest.mark.parametrize("shape", [dict(h=4, w=8), dict(n=1, c=1, h=32, w=32, ho=4, wo=32)])
def test_derivatives_at_pixel_centres_and_edges_are_the_floor_cells(shape):
    """On a pixel row or column bilinear interpolation has a kink. First derivatives equal grid_sample's there;
    second derivatives equal the one-sided difference of grid_sample's first derivatives towards larger
    coordinates (the floor's cell). Sizes are powers of two, so that the points are exactly on the kinks (1/28 is
    not a binary fraction). grid_sample's own double backward is not compared at these points: it rounds the
    coordinate differently from its forward and first backward and can take the other cell."""
    x, grid = make_case(3, **shape)
    v, u = directions(x, grid, 4)
    (d1, d2), (ref1, _) = derivatives(resample, x, grid, v, u), derivatives(grid_sample, x, grid, v, u)
    for a, b in zip(d1, ref1):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    g = torch.Generator().manual_seed(5)
    rx, rg = torch.randn(x.shape, generator=g, dtype=x.dtype), torch.rand(grid.shape, generator=g, dtype=x.dtype)

    def first_along(t):  # <first derivatives of grid_sample at (x, grid) + t (rx, rg), u>
        d, _ = derivatives(grid_sample, x + t * rx, grid + t * rg, v, [torch.zeros_like(x), torch.zeros_like(grid)])
        return sum((a * b).sum() for a, b in zip(d, u))

    h = 1e-7  # along t, within one cell, <first derivatives, u> is a polynomial: Richardson's step removes O(h)
    one_sided = (4 * (first_along(h) - first_along(0.0)) - (first_along(2 * h) - first_along(0.0))) / (2 * h)
    ours = (d2[0] * rx).sum() + (d2[1] * rg).sum()
    torch.testing.assert_close(ours, one_sided, rtol=1e-6, atol=1e-6)


def test_second_derivatives_run_under_vmap_and_equal_grid_samples_per_example():
    """vmap over examples of a second derivative (the shape of a second-order meta-gradient), against grid_sample
    example by example outside vmap, where its double backward runs."""
    x, grid = make_case(2)
    v = torch.randn(x.shape[0], x.shape[1], *grid.shape[1:3], dtype=torch.float64)

    def outer(fn):
        def f(xi, gi, vi):  # one example: (C, H, W), (Ho, Wo, 2), (C, Ho, Wo)
            inner = grad(lambda a, b: (fn(a[None], b[None])[0] * vi).sum(), argnums=(0, 1))
            return sum((d ** 2).sum() for d in inner(xi, gi))
        return grad(f, argnums=(0, 1))

    ours = vmap(outer(resample))(x, grid, v)
    for i in range(x.shape[0]):
        theirs = outer(grid_sample)(x[i], grid[i], v[i])
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a[i], b, rtol=1e-12, atol=1e-12)
    assert ours[1].abs().max() > 1e-3


@pytest.mark.parametrize("shape", [dict(), dict(n=2, c=1, h=28, w=28, ho=28, wo=28), dict(n=1, c=3, h=4, w=3)])
def test_bicubic_equals_grid_sample_and_its_first_derivatives(shape):
    """mode=bicubic: the 4 x 4 taps around each point with Keys' kernel, at random points in and outside the image,
    on pixel centres and edges, and far away (every tap in the zero border)."""
    x, grid = make_case(6, **shape)
    out = resample(x, grid, "bicubic")
    ref = F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    assert (out - resample(x, grid)).abs().max() > 1e-2  # not the bilinear resampler: the comparison can fail
    v, _ = directions(x, grid, 7)
    xs, gs = x.clone().requires_grad_(True), grid.clone().requires_grad_(True)
    ours = torch.autograd.grad((resample(xs, gs, "bicubic") * v).sum(), (xs, gs))
    theirs = torch.autograd.grad((F.grid_sample(xs, gs, mode="bicubic", align_corners=False) * v).sum(), (xs, gs))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_gradcheck_and_gradgradcheck():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    grid = (torch.rand(1, 2, 3, 2, generator=g, dtype=torch.float64) * 2.6 - 1.3).requires_grad_(True)
    for mode in ("bilinear", "bicubic"):
        assert torch.autograd.gradcheck(lambda a, b: resample(a, b, mode), (x, grid))
        assert torch.autograd.gradgradcheck(lambda a, b: resample(a, b, mode), (x, grid))
    with pytest.raises(ValueError, match="bilinear or bicubic"):
        resample(x, grid, "nearest")


def test_sample_is_grid_sample_outside_the_block_and_resample_inside():
    x, grid = make_case(4)
    torch.manual_seed(0)
    assert torch.equal(sample(x, grid), grid_sample(x, grid))
    with any_order_resampling():
        assert torch.equal(sample(x, grid), resample(x, grid))
        with any_order_resampling(False):
            assert torch.equal(sample(x, grid), grid_sample(x, grid))
        assert torch.equal(sample(x, grid), resample(x, grid))
    with pytest.raises(RuntimeError, match="boom"), any_order_resampling():
        raise RuntimeError("boom")
    assert torch.equal(sample(x, grid), grid_sample(x, grid))  # left on an error too


def test_a_shipped_warp_model_samples_the_same_either_way():
    """pretrained:omniglot-maml's warp generator, adapted and sampled: the any-order resampler's samples (what a
    model sees inside a vmapped second-order meta-step) equal grid_sample's to float32 rounding."""
    from metagan.adapt import load
    model = load("pretrained:omniglot-maml")
    assert model.cfg.model.condition == "image"
    support = (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.85).float() * 2 - 1
    adapted = model.adapt(support, 1, torch.Generator().manual_seed(2))
    plain = adapted.sample(16, torch.Generator().manual_seed(3))
    with any_order_resampling():
        gathered = adapted.sample(16, torch.Generator().manual_seed(3))
    assert float((gathered - plain).abs().max()) < 1e-5
    assert float((plain - plain.mean(0)).abs().max()) > 0.5  # the samples differ: the comparison can fail


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_second_order_vmap_equals_loop_from_an_untrained_warp_at_28x28(mode):
    """An untrained warp resamples on its identity grid, every point on a pixel centre (a kink), where
    grid_sample's double backward rounds the coordinate unlike its first backward: with one resampler for second
    order in both ways, MAML's meta-gradient is the same vmapped or task by task (float64, where 1/28 rounds)."""
    import dataclasses
    from metagan.config import LossConfig, get_preset
    from metagan.functional import params_of
    from metagan.meta import MAML, GanProblem, InnerSchedule, meta_gradients, sample_noise
    from metagan.models import build_models
    cfg = dataclasses.replace(get_preset("tiny").model, condition="image", g_affine=0.25, resample=mode)
    torch.manual_seed(0)
    gen, disc = (m.double() for m in build_models(cfg, (1, 28, 28)))
    prob, sched = GanProblem(gen, disc, LossConfig(kind="ns")), InnerSchedule(1, 1, 1)
    g = torch.Generator().manual_seed(0)
    tasks = {"support": torch.rand(2, 2, 1, 28, 28, generator=g, dtype=torch.float64) * 2 - 1,
             "query": torch.rand(2, 2, 1, 28, 28, generator=g, dtype=torch.float64) * 2 - 1,
             "noise": sample_noise(2, sched, 2, 2, prob.z_dim, g, torch.float64)}
    learner = MAML(prob, sched, 0.1, 0.1)
    meta = {"g": params_of(gen), "d": params_of(disc)}
    assert float(meta["g"]["flow.weight"].abs().max()) == 0  # untrained: the identity warp
    (gv, _), (gl, _) = (meta_gradients(learner, meta, tasks, mode) for mode in ("vmap", "loop"))
    for grp in ("g", "d"):
        for k in gl[grp]:
            torch.testing.assert_close(gv[grp][k], gl[grp][k], rtol=1e-10, atol=1e-13)
    assert float(gl["g"]["flow.weight"].abs().max()) > 1e-6
