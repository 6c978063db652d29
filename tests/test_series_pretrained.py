"""The shipped series models (`pretrained:pigcvp-<learner>`, docs/series.md): each is its preset, small, adapts to
three series and samples finite series of the data's shape; the pigcvp benchmark's full budget evaluates them."""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from metagan import checkpoint as ckpt
from metagan.adapt import load
from metagan.config import get_preset
from metagan.models.conv1d import PairSeriesGenerator

SHIPPED = sorted(n for n in ckpt.pretrained_names() if n.startswith("pigcvp-"))


def _series(n: int, length: int = 128) -> torch.Tensor:
    """n pressure-like series (n, 1, length) in model space: a pulse of one period with a little noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length) / length
    wave = 0.5 * torch.sin(2 * math.pi * 6 * t) - 0.2 + 0.3 * (t - 0.5)
    return (wave + 0.05 * torch.randn(n, 1, length, generator=g)).clamp(-1, 1)


def test_each_shipped_series_model_is_its_preset_adapts_to_three_series_and_samples():
    assert "pigcvp-joint" in SHIPPED and {"pigcvp-fomaml", "pigcvp-metasgd"} & set(SHIPPED)
    for name in SHIPPED:
        assert ckpt.resolve(f"pretrained:{name}").stat().st_size < 4_000_000, name  # shipped in the wheel
        model = load(f"pretrained:{name}")
        preset = get_preset(name)
        d = model.cfg.data
        assert len(d.center) == len(d.scale) == 1  # the training pigs' fit: samples in the data's units
        assert replace(d, center=(), scale=()) == replace(preset.data, root=None), name
        for section in ("task", "model", "loss", "meta"):
            assert getattr(model.cfg, section) == getattr(preset, section), (name, section)
        assert model.cfg.train.init_from in (None, "pretrained:pigcvp-joint"), name
        assert model.step > 0 and model.own_steps > 0
        support = _series(3)
        adapted = model.adapt(support, model.own_steps, torch.Generator().manual_seed(0))
        x = adapted.sample(6, torch.Generator().manual_seed(1))
        assert x.shape == (6, 1, 128) and torch.isfinite(x).all(), name
        gain = 1 + PairSeriesGenerator.MAX_GAIN  # a support resampled in time under a bounded gain
        assert x.abs().max() <= gain * support.abs().max() + 1e-5, name
        # a conditional generator: its samples keep the level of the supports they were adapted to, not another
        # family's (the mirrored supports'); time warps of up to 10% may shift this short-period wave by half a period
        level, own = x.mean(-1), support.mean()
        assert ((level - own).abs() < (level + own).abs()).all(), name


def test_the_full_pigcvp_benchmark_evaluates_the_shipped_models(tmp_path):
    from metagan.benchmark import model_generator
    from metagan.series_suite.suite import BUDGETS, METHODS

    checkpoints: dict = {}
    for method, preset in METHODS.items():
        if preset in SHIPPED:
            _, info = model_generator(method, METHODS, BUDGETS["full"], checkpoints, None, tmp_path, False,
                                      log=lambda *_: None)
            assert info["checkpoint"] == f"pretrained:{preset}" and info["train_steps"] > 0, method
    assert checkpoints["pretrain-only"] == checkpoints["pretrain-finetune"] == "pretrained:pigcvp-joint"
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_the_image_web_page_offers_the_image_models_only():
    from metagan.serve.handler import ModelCache

    names = ModelCache().names
    assert "pretrained:omniglot-metasgd" in names and not [n for n in names if n.startswith("pretrained:pigcvp-")]
    assert ckpt.config_of("pretrained:omniglot-joint").data.source == "omniglot"


def test_rank_measures_series_snapshots_on_training_classes(tmp_path, tmp_path_factory, capsys):
    """`metagan rank` on a series run: a SeriesCNN trained on the run's training classes is the feature space, K
    defaults to what the classes allow (5 series: 1 support and 4 to compare with), a larger K is refused."""
    import json

    from test_series_models import _series_root, tiny_series

    from metagan.cli import main
    from metagan.train import train

    root = _series_root(tmp_path_factory)
    run = train(tiny_series(root, "train.steps=2", "train.sample_every=0", "train.keep_every=1"),
                out_dir=tmp_path / "runs", progress=False)
    snaps = [str(run / "checkpoint-000001.safetensors"), str(run)]
    args = ["rank", "--checkpoint", *snaps, "--classes", "3", "--samples", "6", "--draws", "1", "--by", "fd"]
    assert main([*args, "--json", str(tmp_path / "rank.json")]) == 0
    out = json.loads((tmp_path / "rank.json").read_text())
    assert [r["step"] for r in out["rows"]] == [1, 2] and {r["k"] for r in out["rows"]} == {1}
    assert all(math.isfinite(r["fd"]) and r["classes"] == 3 for r in out["rows"])
    assert out["best"] == min(out["rows"], key=lambda r: r["fd"])["checkpoint"]
    capsys.readouterr()
    assert main([*args, "--shots", "2"]) == 2
    assert "--shots 1 or fewer" in capsys.readouterr().err
