"""The command line: train (dry run, errors), adapt from image files, presets, resume, --version, help texts."""
import argparse
import json

import pytest
import torch

from metagan.cli import main
from metagan.data import build_datasets, from_model_space, write_image
from metagan.config import apply_overrides, get_preset
from metagan.errors import ConfigError


def test_dry_run_prints_resolved_config(capsys):
    assert main(["train", "--preset", "tiny", "--set", "meta.inner_steps=3", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["meta"]["inner_steps"] == 3 and cfg["data"]["source"] == "digits"


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--preset", "tiny", "--set", "meta.bogus=1"], "unknown config key meta.bogus"),
    (["train", "--preset", "tiny", "--set", "task.k_shot=0"], "task.k_shot must be at least 1"),
    (["train"], "needs --preset"),
    (["adapt", "--checkpoint", "does-not-exist", "--support", "a.png", "--out", "o"], "no checkpoint"),
])
def test_bad_input_exits_non_zero_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_version(capsys):
    import metagan
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"metagan {metagan.__version__}\n" == "metagan 0.2.0\n"


def _parsers(parser, name="metagan"):
    """(command name, parser) of the parser and every subcommand's, recursively (features train too)."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_a_help_text():
    from metagan.cli import build_parser
    seen, missing = set(), []
    for name, parser in _parsers(build_parser()):
        seen.add(name)
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert {"metagan train", "metagan adapt", "metagan rank", "metagan perf", "metagan benchmark",
            "metagan features train", "metagan evaluate", "metagan export", "metagan demo"} <= seen
    assert "metagan select" not in seen and "metagan bench" not in seen
    assert not missing, f"options without help=: {missing}"


def test_long_adapt_output_wraps_in_the_grid(tmp_path):
    """metagan adapt --num 40: grid.png is 16 images wide (a support line, then 3 lines of samples), not 42."""
    assert main(["train", "--preset", "tiny", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    _, heldout = build_datasets(get_preset("tiny").data)
    paths = []
    for i, img in enumerate(heldout.images[0][:2]):
        paths.append(tmp_path / f"s{i}.png")
        write_image(paths[-1], img)
    out = tmp_path / "out"
    assert main(["adapt", "--checkpoint", str(next(tmp_path.glob("00000-tiny"))), "--support", *map(str, paths),
                 "--steps", "1", "--num", "40", "--out", str(out)]) == 0
    from PIL import Image
    assert Image.open(out / "grid.png").size == (2 + 16 * 10, 2 + 10 + 4 + 3 * 10)


def test_train_then_adapt_from_image_files(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    run = next(tmp_path.glob("00000-tiny"))
    _, heldout = build_datasets(get_preset("tiny").data)
    paths = []
    for i, img in enumerate(heldout.images[0][:3]):
        paths.append(tmp_path / f"s{i}.png")
        write_image(paths[-1], img)
    out = tmp_path / "out"
    argv = ["adapt", "--checkpoint", str(run), "--support", *map(str, paths), "--steps", "2", "--num", "5",
            "--seed", "0", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png"] + [f"sample-{i:04d}.png" for i in range(5)]
    from PIL import Image
    assert Image.open(out / "grid.png").size == (2 + 5 * 10, 2 + 10 + 4 + 10)  # 8x8 images: support row, samples
    first = (out / "sample-0000.png").read_bytes()
    assert main(argv) == 0  # same seed, same images
    assert (out / "sample-0000.png").read_bytes() == first
    assert main(argv[:-3] + ["1", "--out", str(out)]) == 0
    assert (out / "sample-0000.png").read_bytes() != first


def test_adapt_refuses_a_non_image(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["adapt", "--checkpoint", str(next(tmp_path.glob("00000-*"))), "--support", str(bad),
                 "--out", str(tmp_path / "o")]) == 2
    assert "bad.png" in capsys.readouterr().err


def test_resume_from_the_command_line(tmp_path):
    assert main(["train", "--preset", "tiny", "--set", "train.steps=2", "--out-dir", str(tmp_path),
                 "--no-progress"]) == 0
    run = next(tmp_path.glob("00000-*"))
    assert main(["train", "--resume", str(run), "--set", "train.steps=3", "--no-progress"]) == 0
    from metagan import checkpoint as ckpt
    assert ckpt.load(run).step == 3
    log = (run / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log] == [1, 2, 3]


def test_presets_lists_all(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ["digits-demo", "omniglot-reptile", "omniglot-fomaml", "omniglot-maml", "omniglot-metasgd",
                 "omniglot-figr", "omniglot-dawson", "omniglot-joint"]:
        assert name in out


def test_python_api_adapt_sample(tmp_path):
    from metagan.adapt import adapt, load
    from metagan.train import train
    run = train(get_preset("tiny"), out_dir=tmp_path, progress=False)
    _, heldout = build_datasets(get_preset("tiny").data)
    from metagan.data import to_model_space
    support = to_model_space(heldout.images[1][:2])
    adapted = adapt(run, support, steps=2, seed=0)
    x = adapted.sample(7, torch.Generator().manual_seed(0))
    assert x.shape == (7, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, adapted.sample(7, torch.Generator().manual_seed(0)))
    assert load(run).step == 4
    assert from_model_space(x).dtype == torch.uint8
    # steps=0 is no adaptation (the EMA generator as meta-trained), not "the default"; negative is refused
    model = load(run)
    unadapted = model.adapt(support, 0)
    assert all(torch.equal(unadapted.params_g[k], model.ema["g"][k]) for k in unadapted.params_g)
    assert not all(torch.equal(adapted.params_g[k], model.ema["g"][k]) for k in adapted.params_g)
    with pytest.raises(ConfigError, match=">= 0"):
        model.adapt(support, -1)


def test_sample_select_keeps_the_candidates_the_adapted_discriminator_rates_most_real(tmp_path):
    from metagan.adapt import adapt
    from metagan.data import to_model_space
    from metagan.train import train
    run = train(get_preset("tiny"), out_dir=tmp_path, progress=False)
    _, heldout = build_datasets(get_preset("tiny").data)
    adapted = adapt(run, to_model_space(heldout.images[1][:2]), steps=2, seed=0)
    prob = adapted.system.problem
    cands = adapted.sample(15, torch.Generator().manual_seed(3))  # select=3 draws these 15 first
    score = prob.discriminate(adapted.params_d, cands, prob.refs(adapted.support, 15)).detach()
    kept = adapted.sample(5, torch.Generator().manual_seed(3), select=3)
    idx = sorted(score.argsort(descending=True)[:5].tolist())
    assert torch.equal(kept, cands[idx])
    assert score[idx].min() > score[[i for i in range(15) if i not in idx]].max()  # not just any 5 of them
    z = torch.randn(5, prob.z_dim, generator=torch.Generator().manual_seed(3))  # select=1: every draw, as before
    assert torch.equal(adapted.sample(5, torch.Generator().manual_seed(3), select=1.0),
                       prob.generate(adapted.params_g, z, adapted.support).detach())
    with pytest.raises(ConfigError, match=">= 1"):
        adapted.sample(5, select=0.5)


def test_keep_generator_samples_the_starting_generator_chosen_by_the_adapted_discriminator(tmp_path):
    from metagan.adapt import load
    from metagan.data import to_model_space
    from metagan.train import train
    run = train(get_preset("tiny"), out_dir=tmp_path, progress=False)
    _, heldout = build_datasets(get_preset("tiny").data)
    model, support = load(run), to_model_space(heldout.images[1][:2])
    usual = model.adapt(support, 2, torch.Generator().manual_seed(0))
    kept = model.adapt(support, 2, torch.Generator().manual_seed(0), keep_generator=True)
    raw = model.adapt(support, 2, torch.Generator().manual_seed(0), use_ema=False, keep_generator=True)
    assert all(torch.equal(kept.params_g[k], model.ema["g"][k]) for k in kept.params_g)  # the starting G (EMA)
    assert all(torch.equal(raw.params_g[k], model.meta["g"][k]) for k in raw.params_g)  # or the raw one
    assert not all(torch.equal(usual.params_g[k], kept.params_g[k]) for k in kept.params_g)
    assert all(torch.equal(usual.params_d[k], kept.params_d[k]) for k in kept.params_d)  # D adapted as usual
    assert not all(torch.equal(kept.params_d[k], model.meta["d"][k]) for k in kept.params_d)
    out = tmp_path / "out"
    paths = []
    for i, img in enumerate(heldout.images[1][:2]):
        paths.append(tmp_path / f"s{i}.png")
        write_image(paths[-1], img)
    assert main(["adapt", "--checkpoint", str(run), "--support", *map(str, paths), "--steps", "2", "--num", "3",
                 "--select", "2", "--keep-generator", "--out", str(out)]) == 0
    assert len(list(out.glob("sample-*.png"))) == 3


def test_export_writes_a_small_model_that_adapts_but_does_not_resume(tmp_path, capsys):
    from metagan import checkpoint as ckpt
    from metagan.adapt import load
    from metagan.train import train
    run = train(get_preset("tiny"), out_dir=tmp_path, progress=False)
    out = tmp_path / "shipped" / "tiny.safetensors"
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 0
    full, small = ckpt.load(run), ckpt.load(out)
    assert small.optimizer is None and small.rng_state is None and small.config.data.root is None
    assert out.stat().st_size < (run / "checkpoint.safetensors").stat().st_size
    for group in full.meta:
        for k in full.meta[group]:
            assert torch.equal(full.meta[group][k], small.meta[group][k])
    a = load(run).adapt(torch.zeros(2, 1, 8, 8), 1, torch.Generator().manual_seed(0)).sample(3, torch.Generator().manual_seed(1))
    b = load(out).adapt(torch.zeros(2, 1, 8, 8), 1, torch.Generator().manual_seed(0)).sample(3, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    # a warm-started run: a local init_from path is cleared, a pretrained:NAME one kept
    from dataclasses import replace
    warm = train(apply_overrides(get_preset("tiny"), [f"train.init_from={out}"]), out_dir=tmp_path, progress=False)
    assert main(["export", "--checkpoint", str(warm), "--out", str(tmp_path / "w.safetensors")]) == 0
    assert ckpt.load(tmp_path / "w.safetensors").config.train.init_from is None
    k = ckpt.load(warm)
    k.config = replace(k.config, train=replace(k.config.train, init_from="pretrained:omniglot-joint"))
    ckpt.save(tmp_path / "p.safetensors", k)
    assert main(["export", "--checkpoint", str(tmp_path / "p.safetensors"), "--out", str(tmp_path / "q.safetensors")]) == 0
    assert ckpt.load(tmp_path / "q.safetensors").config.train.init_from == "pretrained:omniglot-joint"


def test_pretrained_names_resolve_to_shipped_files_and_unknown_names_list_them(capsys):
    from metagan import checkpoint as ckpt
    for name in ckpt.pretrained_names():
        assert ckpt.resolve(f"pretrained:{name}") == ckpt.PRETRAINED_DIR / f"{name}.safetensors"
        assert ckpt.load(f"pretrained:{name}").config.data.root is None
    assert main(["adapt", "--checkpoint", "pretrained:no-such-model", "--support", "x.png", "--out", "o"]) != 0
    assert "no shipped model 'no-such-model'" in capsys.readouterr().err


def test_shipped_models_are_their_presets_and_adapt_to_five_images():
    """Each pretrained:omniglot-<x> was trained with preset omniglot-<x> (docs/models.md) and adapts."""
    from metagan import checkpoint as ckpt
    from metagan.adapt import load
    names = ckpt.pretrained_names()
    assert {"omniglot-joint", "omniglot-fomaml", "omniglot-reptile", "omniglot-maml", "omniglot-metasgd"} <= set(names)
    for name in names:
        model = load(f"pretrained:{name}")
        preset = get_preset(name)
        for section in ("data", "task", "model", "loss", "meta"):
            want = getattr(preset, section)
            if section == "data":
                want = type(want)(**{**want.__dict__, "root": None})
            assert getattr(model.cfg, section) == want, (name, section)
        assert model.cfg.train.init_from in (None, "pretrained:omniglot-joint")
        support = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
        x = model.adapt(support, 2, torch.Generator().manual_seed(0)).sample(4, torch.Generator().manual_seed(1))
        assert x.shape == (4, 1, 28, 28) and torch.isfinite(x).all() and x.abs().max() <= 1
