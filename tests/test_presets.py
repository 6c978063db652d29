"""Every shipped preset resolves and takes real meta-steps on its data (shrunk to seconds)."""
import dataclasses
import json
from pathlib import Path

import pytest

from metagan import checkpoint as ckpt
from metagan.config import PRESETS, apply_overrides, get_preset
from metagan.train import train

OMNIGLOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_trains_two_steps(name, tmp_path):
    cfg = get_preset(name)
    if cfg.data.source == "omniglot":
        if not (OMNIGLOT / "images_background.npz").exists():
            pytest.skip(f"Omniglot not found at {OMNIGLOT}")
        cfg = apply_overrides(cfg, [f"data.root={OMNIGLOT}"])
    small = apply_overrides(cfg, ["train.steps=2", "task.meta_batch=2", "meta.inner_steps=2",
                                  "train.grid_classes=2", "train.grid_samples=2", "train.adapt_steps=1"])
    run = train(small, out_dir=tmp_path, name=name, progress=False)
    ck = ckpt.load(run)
    assert ck.step == 2 and ck.config.meta.learner == cfg.meta.learner and ck.config.loss == cfg.loss
    assert (run / "samples-000002.png").exists()


def test_figr_and_dawson_settings():
    figr = get_preset("omniglot-figr")
    assert (figr.meta.learner, figr.loss.kind, figr.task.k_shot, figr.meta.inner_steps) == ("reptile", "wgan-gp", 4, 10)
    dawson = get_preset("omniglot-dawson")
    assert (dawson.meta.learner, dawson.loss.kind, dawson.model.condition) == ("fomaml", "ns", "none")


def test_metagan_presets_share_one_model_and_differ_only_in_the_learner():
    """One model, task, data and GAN loss; Meta-SGD differs in its query loss's terms too, and in the shape of its
    learned rates, one per tensor, kept >= 0."""
    import dataclasses
    cfgs = {n: get_preset(f"omniglot-{n}") for n in ("fomaml", "maml", "metasgd", "reptile", "joint")}
    for name, cfg in cfgs.items():
        assert cfg.meta.learner == name and cfg.model.condition == "image" and cfg.task.k_shot == 5
        loss = dataclasses.replace(cfg.loss, outer_mmd=0.0, outer_adv=1.0)
        assert (cfg.model, loss, cfg.task, cfg.data) == (cfgs["fomaml"].model, cfgs["fomaml"].loss,
                                                         cfgs["fomaml"].task, cfgs["fomaml"].data)
        assert (cfg.loss.outer_mmd, cfg.loss.outer_adv) == ((10.0, 0.0) if name == "metasgd" else (0.0, 1.0))
        assert (cfg.meta.rates, cfg.meta.clamp_rates) == (("step", True) if name == "metasgd" else ("element", False))
        assert (cfg.meta.inner_steps, cfg.train.adapt_steps) == ((2, 2) if name == "metasgd" else (5, 10))


def test_every_shipped_model_loads_and_its_networks_match_its_config():
    """The shipped models were written by metagan 0.1.0: their configs hold options removed since, at values
    where they did nothing."""
    from metagan.adapt import load
    names = [n for n in ckpt.pretrained_names() if n.startswith("omniglot-")]  # series: test_series_pretrained
    assert len(names) == 9
    for name in names:
        model = load(f"{ckpt.PRETRAINED_PREFIX}{name}")  # checks the tensors against the config's networks
        assert model.cfg.model.condition == ("none" if name in ("omniglot-figr", "omniglot-dawson") else "image")


def test_configs_stored_before_model_resample_keep_bilinear_and_new_ones_are_bicubic(tmp_path):
    """A stored config without model.resample was trained with the bilinear warp, and loads as such (its samples
    and a resumed run stay the same); a new config, and every preset, reads the reference bicubically."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from metagan.adapt import load
    from metagan.config import Config, config_from_json, get_preset
    with safe_open(str(ckpt.resolve(f"{ckpt.PRETRAINED_PREFIX}omniglot-joint")), "pt") as f:  # bicubic warp
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    stored = json.loads(meta["config"])
    assert stored["model"].pop("resample") == "bicubic"
    old = tmp_path / "before-resample.safetensors"  # the same file as metagan 0.2.0 stored it: no model.resample
    save_file(tensors, str(old), metadata={**meta, "config": json.dumps(stored)})
    shipped = load(str(old))
    assert shipped.cfg.model.resample == "bilinear"
    assert shipped.system.problem.gen.mode == "bilinear"
    assert Config().model.resample == get_preset("omniglot-metasgd").model.resample == "bicubic"
    cfg = get_preset("omniglot-metasgd")
    again = config_from_json(json.dumps(dataclasses.asdict(cfg)))
    assert again.model.resample == "bicubic"  # stored with the key: kept
