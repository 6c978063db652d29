"""The command line: train (dry run, errors), adapt from image files, presets, resume, --version, help texts."""
import argparse
import json

import pytest
import torch

from metagan.cli import main
from metagan.data import build_datasets, from_model_space, write_image
from metagan.config import apply_overrides, get_preset
from metagan.errors import ConfigError


def _write_supports(folder, images) -> list:
    """Write `images` (uint8, as the dataset holds them) as s0.png, s1.png, ... in `folder`; their paths."""
    paths = [folder / f"s{i}.png" for i in range(len(images))]
    for path, img in zip(paths, images):
        write_image(path, img)
    return paths


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
    paths = _write_supports(tmp_path, heldout.images[0][:2])
    out = tmp_path / "out"
    assert main(["adapt", "--checkpoint", str(next(tmp_path.glob("00000-tiny"))), "--support", *map(str, paths),
                 "--steps", "1", "--num", "40", "--out", str(out)]) == 0
    from PIL import Image
    assert Image.open(out / "grid.png").size == (2 + 16 * 10, 2 + 10 + 4 + 3 * 10)


def test_train_then_adapt_from_image_files(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    run = next(tmp_path.glob("00000-tiny"))
    _, heldout = build_datasets(get_preset("tiny").data)
    paths = _write_supports(tmp_path, heldout.images[0][:3])
    out = tmp_path / "out"
    argv = ["adapt", "--checkpoint", str(run), "--support", *map(str, paths), "--steps", "2", "--num", "5",
            "--seed", "0", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png"] + [f"sample-{i:04d}.png" for i in range(5)]
    from PIL import Image
    assert Image.open(out / "grid.png").size == (2 + 5 * 10, 2 + 10 + 4 + 10)  # 8x8 images: support row, samples
    first = (out / "sample-0000.png").read_bytes()
    assert main(argv + ["--overwrite"]) == 0  # same seed, same images
    assert (out / "sample-0000.png").read_bytes() == first
    assert main(argv[:-3] + ["1", "--out", str(out), "--overwrite"]) == 0
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
                 "omniglot-figr", "omniglot-dawson", "omniglot-joint", "omniglot-cvae", "omniglot-cvae-metasgd"]:
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
    paths = _write_supports(tmp_path, heldout.images[1][:2])
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
    for name in ckpt.pretrained_names(ckpt.FORMAT):  # the dialogue model: tests/test_dialogue_pretrained.py
        assert ckpt.load(f"pretrained:{name}").config.data.root is None
    assert main(["adapt", "--checkpoint", "pretrained:no-such-model", "--support", "x.png", "--out", "o"]) != 0
    assert "no shipped model 'no-such-model'" in capsys.readouterr().err


BILINEAR_SHIPPED = {"omniglot-figr", "omniglot-dawson"}


def test_shipped_models_are_their_presets_and_adapt_to_five_images():
    """Each pretrained:omniglot-<x> was trained with preset omniglot-<x> (docs/models.md) and adapts; the files
    trained before model.resample existed (metagan 0.2.0's) read bilinearly, as their configs say."""
    from metagan import checkpoint as ckpt
    from metagan.adapt import load
    names = [n for n in ckpt.pretrained_names() if n.startswith("omniglot-")]  # series: test_series_pretrained
    assert {"omniglot-joint", "omniglot-fomaml", "omniglot-reptile", "omniglot-maml", "omniglot-metasgd",
            "omniglot-cvae", "omniglot-cvae-metasgd"} <= set(names)
    for name in names:
        model = load(f"pretrained:{name}")
        preset = get_preset(name)
        for section in ("data", "task", "model", "loss", "meta"):
            want = getattr(preset, section)
            if section == "data":
                want = type(want)(**{**want.__dict__, "root": None})
            if section == "model" and name in BILINEAR_SHIPPED:
                want = type(want)(**{**want.__dict__, "resample": "bilinear"})
            assert getattr(model.cfg, section) == want, (name, section)
        assert model.cfg.train.init_from in (None, "pretrained:omniglot-joint", "pretrained:omniglot-cvae")
        support = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
        x = model.adapt(support, 2, torch.Generator().manual_seed(0)).sample(4, torch.Generator().manual_seed(1))
        assert x.shape == (4, 1, 28, 28) and torch.isfinite(x).all() and x.abs().max() <= 1


# --- ordinary mistakes: one `error:` line, exit 2, nothing written or lost -------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A trained tiny run and three support images of a held-out class (digits: light ink on dark)."""
    root = tmp_path_factory.mktemp("tiny")
    assert main(["train", "--preset", "tiny", "--out-dir", str(root), "--no-progress"]) == 0
    _, heldout = build_datasets(get_preset("tiny").data)
    return next(root.glob("00000-tiny")), list(map(str, _write_supports(root, heldout.images[0][:3])))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else None


def _one_error_line(capsys, *expected):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("extra, expected", [
    (["--num", "0"], "use 1 to 1000000"),
    (["--num", "-1"], "use 1 to 1000000"),
    (["--num", "1000000000"], "one PNG file each"),
    (["--seed", "100000000000000000000000"], "64-bit"),
    (["--seed", "-1"], "64-bit"),
    (["--select", "inf"], ">= 1"),
    (["--select", "nan"], ">= 1"),
    (["--select", "0.5"], ">= 1"),
    (["--steps", "-1"], "adaptation steps"),
    (["--num", "3.5"], "whole number"),
    (["--polarity", "upside-down"], "invalid choice"),
])
def test_adapt_refuses_bad_counts_seeds_and_ratios_before_any_work(tiny, tmp_path, capsys, extra, expected):
    run, paths = tiny
    assert main(["adapt", "--checkpoint", str(run), "--support", *paths, "--out", str(tmp_path / "o"), *extra]) == 2
    _one_error_line(capsys, expected)
    assert not (tmp_path / "o").exists()


def test_adapt_never_mixes_two_runs_and_overwrite_replaces_only_its_own_files(tiny, tmp_path, capsys):
    run, paths = tiny
    out = tmp_path / "out"
    base = ["adapt", "--checkpoint", str(run), "--support", *paths[:2], "--steps", "1", "--out", str(out)]
    assert main(base + ["--num", "8"]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "sample-old.png").write_bytes(b"not ours: the name has no number")
    before = _snapshot(out)
    assert main(base + ["--num", "4"]) == 2  # the probe: 4 overwritten, 4 left, exit 0
    _one_error_line(capsys, "not empty", "--overwrite")
    assert _snapshot(out) == before
    assert main(base + ["--num", "4", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "notes.txt", "sample-0000.png", "sample-0001.png",
                                                     "sample-0002.png", "sample-0003.png", "sample-old.png"]
    assert (out / "notes.txt").read_text() == "mine"
    # --overwrite never replaces an input: a support image that is one of the outputs
    before = _snapshot(out)
    capsys.readouterr()
    assert main(base[:4] + [str(out / "sample-0000.png"), "--out", str(out), "--overwrite"]) == 2
    _one_error_line(capsys, "sample-0000.png", "would replace")
    assert _snapshot(out) == before


def test_output_paths_that_are_files_or_read_only_are_refused(tiny, tmp_path, capsys, monkeypatch):
    run, paths = tiny
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    assert main(["adapt", "--checkpoint", str(run), "--support", *paths, "--out", str(a_file)]) == 2
    _one_error_line(capsys, "is a file")
    assert main(["adapt", "--checkpoint", str(run), "--support", *paths, "--out", str(a_file), "--overwrite"]) == 2
    _one_error_line(capsys, "is a file")
    assert main(["train", "--preset", "tiny", "--out-dir", str(a_file), "--no-progress"]) == 2
    _one_error_line(capsys, "--out-dir", "is a file")
    assert a_file.read_text() == "keep"
    import metagan.cli.common  # the output-path checks (_writable) call os.access there
    monkeypatch.setattr(metagan.cli.common.os, "access", lambda path, mode: False)  # read-only (tests run as root)
    assert main(["adapt", "--checkpoint", str(run), "--support", *paths, "--out", str(tmp_path / "ro" / "o")]) == 2
    _one_error_line(capsys, "cannot write", "read-only")
    assert not (tmp_path / "ro").exists()


def test_export_never_writes_over_its_source_or_an_existing_file(tiny, tmp_path, capsys):
    from metagan import checkpoint as ckpt
    run, _ = tiny
    own = run / "checkpoint.safetensors"
    before = own.read_bytes()
    for extra in ([], ["--overwrite"]):  # the probe: the run lost its optimizer and RNG state
        assert main(["export", "--checkpoint", str(run), "--out", str(own), *extra]) == 2
        _one_error_line(capsys, "being exported")
    assert own.read_bytes() == before and ckpt.load(run).optimizer is not None
    assert main(["export", "--checkpoint", str(run), "--out", str(run)]) == 2
    _one_error_line(capsys, "is a folder")
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"someone's file")
    assert main(["export", "--checkpoint", str(run), "--out", str(other)]) == 2
    _one_error_line(capsys, "exists", "--overwrite")
    assert other.read_bytes() == b"someone's file"
    assert main(["export", "--checkpoint", str(run), "--out", str(other), "--overwrite"]) == 0
    assert ckpt.load(other).optimizer is None


def test_benchmark_merge_of_a_missing_folder_and_evaluate_json_over_a_file(tiny, tmp_path, capsys):
    assert main(["benchmark", "--merge", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys, "nope", "no such folder")
    assert not (tmp_path / "m").exists()
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    assert main(["rank", "--checkpoint", str(tiny[0]), "--json", str(existing)]) == 2
    _one_error_line(capsys, "exists", "--overwrite")
    assert main(["evaluate", "--checkpoint", str(tiny[0]), "--json", str(tiny[0] / "checkpoint.safetensors"),
                 "--overwrite"]) == 2
    _one_error_line(capsys, "input")
    assert main(["rank", "--checkpoint", str(tiny[0]), "--samples", "0"]) == 2
    _one_error_line(capsys, "--samples counts")


def test_a_closed_stdout_pipe_ends_quietly():
    """`metagan train --dry-run | head`: no BrokenPipeError traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    import metagan
    env = {**os.environ, "PYTHONPATH": str(Path(metagan.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "metagan", "train", "--preset", "tiny", "--dry-run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the command prints
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""


def test_support_images_that_cannot_be_a_drawing_are_refused(tiny, tmp_path, capsys):
    import numpy as np
    from PIL import Image
    run, paths = tiny
    Image.new("L", (1, 1)).save(tmp_path / "dot.png")
    Image.new("L", (20, 20), 200).save(tmp_path / "blank.png")
    Image.new("LA", (20, 20), (0, 0)).save(tmp_path / "clear.png")
    Image.fromarray(255 - np.asarray(Image.open(paths[0]))).save(tmp_path / "inverted.png")  # dark ink on light
    out = tmp_path / "o"
    for name, expected in [("dot", "1x1"), ("blank", "blank"), ("clear", "transparent"),
                           ("inverted", "--polarity dark-on-light")]:
        assert main(["adapt", "--checkpoint", str(run), "--support", str(tmp_path / f"{name}.png"),
                     "--out", str(out)]) == 2, name
        _one_error_line(capsys, f"{name}.png", expected)
        assert not out.exists()
    # said explicitly, the inverted file is read as dark-on-light: the same images as the original file
    assert main(["adapt", "--checkpoint", str(run), "--support", str(tmp_path / "inverted.png"), "--num", "2",
                 "--polarity", "dark-on-light", "--out", str(out)]) == 0
    assert main(["adapt", "--checkpoint", str(run), "--support", paths[0], "--num", "2",
                 "--out", str(tmp_path / "p")]) == 0
    assert _snapshot(out) == _snapshot(tmp_path / "p")


def test_many_support_images_warn_and_too_many_are_refused(tiny, tmp_path, capsys):
    run, paths = tiny
    capsys.readouterr()
    assert main(["adapt", "--checkpoint", str(run), "--support", *(paths * 3), "--steps", "1", "--num", "1",
                 "--out", str(tmp_path / "a")]) == 0  # K = 9 > 4 x task.k_shot = 8
    err = capsys.readouterr().err
    assert err.startswith("warning: 9 support examples") and err.count("\n") == 1
    assert main(["adapt", "--checkpoint", str(run), "--support", *(paths * 34), "--out", str(tmp_path / "b")]) == 2
    _one_error_line(capsys, "102 support examples", "at most 100")
    assert not (tmp_path / "b").exists()


def test_a_request_that_would_not_fit_in_memory_is_refused_up_front(tiny, tmp_path, capsys, monkeypatch):
    import sys
    from metagan.adapt import check_sample_memory
    run, paths = tiny
    monkeypatch.setattr(sys.modules["metagan.adapt"], "available_memory", lambda: 10_000)  # the module, not
    # metagan.adapt, which names the adapt function
    assert main(["adapt", "--checkpoint", str(run), "--support", *paths, "--num", "100",
                 "--out", str(tmp_path / "o")]) == 2
    _one_error_line(capsys, "100 samples", "GiB", "half")
    assert not (tmp_path / "o").exists()
    # the estimate: images (4 bytes a value) plus latents and scores of every candidate
    assert check_sample_memory(10, 2.0, (1, 8, 8), 4, available=10**9) == 10 * 64 * 4 + 20 * 5 * 4
    with pytest.raises(ConfigError, match="at most about 5 at a time"):
        check_sample_memory(10, 1.0, (1, 8, 8), 4, available=2 * (10 * 64 * 4 + 10 * 5 * 4) // 2)


@pytest.mark.parametrize("condition", ["none", "image"])
def test_batched_sampling_equals_one_call(tmp_path, condition):
    """sample() in batches gives the images of one call: the same latents, paired models the same references."""
    from metagan.adapt import adapt
    from metagan.data import to_model_space
    from metagan.train import train
    cfg = apply_overrides(get_preset("tiny"), [f"model.condition={condition}", "train.steps=2"])
    run = train(cfg, out_dir=tmp_path, progress=False)
    _, heldout = build_datasets(cfg.data)
    adapted = adapt(run, to_model_space(heldout.images[1][:3]), steps=1, seed=0)
    for n, select, batch in [(40, 1.0, 16), (37, 1.0, 5), (20, 3.0, 16), (9, 2.5, 7)]:
        one = adapted.sample(n, torch.Generator().manual_seed(3), select, batch=10_000)
        batched = adapted.sample(n, torch.Generator().manual_seed(3), select, batch=batch)
        assert batched.shape == one.shape == (n, 1, 8, 8)
        assert torch.allclose(batched, one, atol=1e-6), (condition, n, select, batch)
    # n <= batch is the one call itself, bit for bit
    assert torch.equal(adapted.sample(40, torch.Generator().manual_seed(3), batch=40),
                       adapted.sample(40, torch.Generator().manual_seed(3), batch=10_000))


def test_adapting_a_jointly_trained_model_notes_that_steps_0_samples_it_as_trained(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--set", "meta.learner=joint", "--set", "train.steps=2",
                 "--out-dir", str(tmp_path), "--no-progress"]) == 0
    run = next(tmp_path.glob("00000-tiny"))
    _, heldout = build_datasets(get_preset("tiny").data)
    paths = list(map(str, _write_supports(tmp_path, heldout.images[0][:3])))
    argv = ["adapt", "--checkpoint", str(run), "--support", *paths, "--num", "2", "--out", str(tmp_path / "o")]
    capsys.readouterr()
    assert main(argv) == 0
    assert "--steps 0" in capsys.readouterr().err
    assert main(argv + ["--steps", "0", "--overwrite"]) == 0
    assert "--steps 0" not in capsys.readouterr().err
