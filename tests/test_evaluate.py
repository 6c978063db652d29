"""The evaluation harness end to end on small synthetic classes, and the benchmark report."""
import json

import pytest
import torch
from conftest import omniglot_dir

from metagan.baselines import affine_augmenter
from metagan.data import ClassDataset
from metagan.evaluate import Protocol, evaluate
from metagan.metrics.features import load_feature_net

PROTO = Protocol(classes=6, samples=12, support_draws=2, n_way=6, episodes=20, proto_generated=3,
                 lowdata_n=(5,), lowdata_generated=4, lowdata_updates=2)


def strokes(n_classes=8, per_class=12, seed=0):
    """Each class: a random bar pattern with jitter, 28x28 uint8, ink bright."""
    g = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(n_classes):
        base = torch.zeros(28, 28)
        for _ in range(3):
            r, c = torch.randint(4, 24, (2,), generator=g).tolist()
            if torch.rand(1, generator=g) < 0.5:
                base[r:r + 2, 4:24] = 1
            else:
                base[4:24, c:c + 2] = 1
        imgs = []
        for _ in range(per_class):
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
            imgs.append(torch.roll(base, (dy, dx), (0, 1)))
        images.append((torch.stack(imgs)[:, None] * 255).to(torch.uint8))
    return ClassDataset("strokes", images, [f"c{i}" for i in range(n_classes)])


@pytest.fixture(scope="module")
def net():
    return load_feature_net()


def test_copying_generator_is_flagged_and_noise_has_low_fidelity(net):
    data = strokes()
    copier = lambda s, n, g: s[torch.randint(len(s), (n,), generator=g)]  # noqa: E731
    noise = lambda s, n, g: torch.rand(n, *s.shape[1:], generator=g) * 2 - 1  # noqa: E731
    r_copy = evaluate(copier, data, 5, net, PROTO)
    r_noise = evaluate(noise, data, 5, net, PROTO)
    assert r_copy["copy_ratio"] < 0.05 < r_copy["copy_ratio_real"]
    assert r_copy["fidelity"] > 0.9 and r_noise["fidelity"] < 0.5
    assert r_noise["fd"] > 5 * r_copy["fd"]
    assert r_noise["precision"] < r_copy["precision"]
    for key in ("fd", "kid", "precision", "recall", "density", "coverage", "fidelity", "diversity", "copy_ratio"):
        assert isinstance(r_copy[key], float)
    assert set(r_copy["lowdata_acc"]) == {"5"} and 0 <= r_copy["protonet_acc"]["ci95"] < 1
    # FD and fidelity: one value per support draw, reported as their mean with a confidence half-width
    for key in ("fd", "fidelity"):
        per = r_noise[f"{key}_draws"]
        assert len(per) == PROTO.support_draws and r_noise[key] == pytest.approx(sum(per) / len(per))
    assert r_noise["fd_draws"][0] != r_noise["fd_draws"][1] and r_noise["fd_ci95"] > 0


def test_a_generator_that_diverges_is_counted_and_scored_as_failing(net):
    from metagan.benchmark import report_markdown
    data = strokes()
    copier = lambda s, n, g: s[torch.randint(len(s), (n,), generator=g)]  # noqa: E731
    calls = []

    def sometimes_nan(s, n, g):
        calls.append(1)
        x = copier(s, n, g)
        return torch.full_like(x, float("nan")) if len(calls) == 1 else x
    r = evaluate(sometimes_nan, data, 5, net, PROTO)
    assert r["nonfinite_sets"] == 1 and r["sets"] == PROTO.classes * PROTO.support_draws
    assert r["fd_draws"][0] != r["fd_draws"][0] and r["fd_draws"][1] == r["fd_draws"][1]  # nan only on draw 0
    # the diverged class's samples are misses: draw 0 loses exactly that class's share
    assert r["fidelity_draws"][0] <= r["fidelity_draws"][1] - 1 / PROTO.classes + 1e-9
    results = {"suite": "omniglot", "budget": "small", "adapt_steps": 5, "heldout": "x", "protocol": PROTO.__dict__,
               "feature_net": {"file": "f", "sha256": "0" * 64}, "methods": {"m": {"k": {"5": r}}}}
    assert "m, K = 5: 1 of 12 adapted generators produced non-finite images" in report_markdown(results)


def test_confidence_half_width_uses_student_t():
    from metagan.evaluate import ci95
    assert ci95([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2 dof), sd 1
    assert ci95([5.0]) == 0.0


def test_no_augmentation_has_no_generative_metrics_and_is_deterministic(net):
    data = strokes()
    a = evaluate(None, data, 1, net, PROTO)
    assert a["fd"] is None and a["fidelity"] is None
    assert a["protonet_acc"] == evaluate(None, data, 1, net, PROTO)["protonet_acc"]


def test_affine_augmenter_keeps_shape_range_and_varies():
    s = torch.rand(3, 1, 28, 28) * 2 - 1
    out = affine_augmenter()(s, 10, torch.Generator().manual_seed(0))
    assert out.shape == (10, 1, 28, 28) and out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    assert not torch.allclose(out[0], out[1])


def test_benchmark_report_table(tmp_path):
    from metagan.benchmark import report_markdown
    r = {"fd": 1.0, "fd_ci95": 0.25, "kid": 0.1, "precision": 0.5, "recall": 0.5, "density": 0.5, "coverage": 0.5, "fidelity": 0.9,
         "diversity": 0.8, "copy_ratio": 0.9, "copy_ratio_real": 1.0, "lowdata_acc": {"5": 0.7, "10": 0.8},
         "protonet_acc": {"mean": 0.9, "ci95": 0.01}}
    none = {**dict.fromkeys(r), "lowdata_acc": {"5": 0.6, "10": 0.7}, "protonet_acc": {"mean": 0.8, "ci95": 0.02}}
    results = {"suite": "omniglot", "budget": "small", "adapt_steps": 5, "heldout": "x",
               "protocol": {"classes": 20, "samples": 50, "n_way": 20}, "feature_net": {"file": "f", "sha256": "0" * 64},
               "methods": {"a": {"k": {"5": r}}, "none": {"k": {"5": none}}}}
    md = report_markdown(results)
    assert "| a | 1.000 ± 0.250 | 0.100 |" in md and "0.700/0.800" in md and "0.900 ± 0.010" in md
    assert "| none | - |" in md
    assert "Copy ratio: 1.00 at K = 5 for held-out real images" in md
    results["methods"]["a"]["k"]["1"] = {**r, "copy_ratio_real": 1.36}  # the real images' ratio depends on K
    results["methods"]["none"]["k"]["1"] = none
    assert "Copy ratio: 1.36 at K = 1, 1.00 at K = 5 for held-out real images" in report_markdown(results)
    json.dumps(results)
    # a method evaluated at K = 5 only (--shots 5) beside methods with both: its K = 1 row says so; the plot too
    results["methods"]["b"] = {"k": {"5": r}}
    md = report_markdown(results)
    assert "| b | not evaluated at K = 1 |" + " |" * 10 in md and md.count("| b | 1.000 ± 0.250 |") == 1
    from metagan.plots import plot_results
    assert plot_results(results, tmp_path / "m.png").exists()


def test_evaluate_command_on_an_omniglot_checkpoint(tmp_path, monkeypatch, capsys):
    from metagan import evaluate as ev
    from metagan.cli import main
    omniglot = omniglot_dir()
    assert main(["train", "--preset", "omniglot-fomaml", "--data-dir", str(omniglot), "--out-dir", str(tmp_path),
                 "--set", "train.steps=1", "--set", "task.meta_batch=2", "--set", "meta.inner_steps=1",
                 "--set", "train.grid_classes=1", "--no-progress"]) == 0
    monkeypatch.setitem(ev.PROTOCOLS, "small", PROTO)
    out = tmp_path / "eval.json"
    run = next(tmp_path.glob("00000-*"))
    assert main(["evaluate", "--checkpoint", str(run), "--shots", "1", "--json", str(out), "--steps", "1"]) == 0
    result = json.loads(out.read_text())["k"]["1"]
    assert result["k"] == 1 and result["fd"] > 0 and set(result["lowdata_acc"]) == {"5"}
    # rank orders checkpoints on training classes and names the best
    sel = tmp_path / "sel.json"
    assert main(["rank", "--checkpoint", str(run), str(run / "checkpoint.safetensors"), "--steps", "1",
                 "--json", str(sel)]) == 0
    picked = json.loads(sel.read_text())
    assert len(picked["rows"]) == 2 and picked["rows"][0]["classes"] == PROTO.classes
    assert picked["rows"][0]["fidelity"] == picked["rows"][1]["fidelity"]  # the same model twice
    assert picked["best"] == str(run)
    # the protocol's counts and selection by the adapted discriminator, as the model card's diagnostics use them
    assert main(["rank", "--checkpoint", str(run), "--steps", "1", "--classes", "3", "--samples", "4",
                 "--draws", "1", "--select", "2", "--json", str(sel), "--overwrite"]) == 0
    row = json.loads(sel.read_text())["rows"][0]
    assert row["classes"] == 3 and len(row["fd_draws"]) == 1
    assert main(["rank", "--checkpoint", str(run), "--steps", "1", "--classes", "3", "--samples", "4",
                 "--draws", "1", "--json", str(sel), "--overwrite"]) == 0
    assert json.loads(sel.read_text())["rows"][0]["fd"] != row["fd"]  # --select 2 kept other samples
    capsys.readouterr()
    for bad, message in ((["--select", "0.5"], "ratio of drawn candidates"), (["--draws", "0"], "--draws counts")):
        assert main(["rank", "--checkpoint", str(run), "--json", str(tmp_path / "no.json")] + bad) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "no.json").exists()
    # a digits checkpoint is refused with a message
    assert main(["train", "--preset", "tiny", "--out-dir", str(tmp_path / "d"), "--no-progress"]) == 0
    assert main(["evaluate", "--checkpoint", str(next((tmp_path / "d").glob("0*")))]) == 2
    assert "evaluate measures Omniglot models" in capsys.readouterr().err
    # a series checkpoint is refused with the command that measures it
    assert main(["evaluate", "--checkpoint", "pretrained:pigcvp-metasgd"]) == 2
    err = capsys.readouterr().err
    assert "series model" in err and "--suite pigcvp" in err


def test_benchmark_resumes_and_merges_folders(tmp_path, monkeypatch):
    from metagan import evaluate as ev
    from metagan.benchmark import merge_results, run_benchmark
    from metagan.errors import ConfigError
    omniglot = omniglot_dir()
    monkeypatch.setitem(ev.PROTOCOLS, "small", PROTO)
    kw = dict(data_root=str(omniglot), shots=(1,), progress=False)
    run_benchmark("omniglot", "small", tmp_path / "a", methods=["no-augmentation"], log=lambda m: None, **kw)
    first = run_benchmark("omniglot", "small", tmp_path / "b", methods=["affine"], log=lambda m: None, **kw)
    first = json.loads(json.dumps(first))  # as stored
    # folders with different methods merge into one report, in the report order, with their sample grids
    merged = merge_results([tmp_path / "b", tmp_path / "a"], tmp_path / "m")
    assert list(merged["methods"]) == ["no-augmentation", "affine"]
    assert merged["methods"]["affine"] == first["methods"]["affine"]
    assert "| affine |" in (tmp_path / "m" / "results.md").read_text()
    assert (tmp_path / "m" / "samples-affine.png").exists() and (tmp_path / "m" / "metrics.png").exists()
    # a second run in the same folder keeps what is there and adds the rest
    logged = []
    again = run_benchmark("omniglot", "small", tmp_path / "b", methods=["no-augmentation", "affine"],
                          log=logged.append, **kw)
    assert any('"kept": "affine"' in line for line in logged) and not any('"kept": "no-aug' in x for x in logged)
    assert again["methods"]["affine"] == first["methods"]["affine"] and "no-augmentation" in again["methods"]
    assert json.loads((tmp_path / "b" / "results.json").read_text())["methods"] == json.loads(json.dumps(again))["methods"]
    with pytest.raises(ConfigError, match="in both"):
        merge_results([tmp_path / "b", tmp_path / "a"], tmp_path / "m2")
    # --lowdata-seeds: a kept method gets only the repeats; seed 0 is the table's run, seed 1 a run of the protocol
    # with seed 1; the report pairs each method's seeds with no augmentation's
    # with another --methods, the folder's other methods stay in its results.json, in report order
    run_benchmark("omniglot", "small", tmp_path / "b", methods=["affine"], log=lambda m: None, **kw)
    assert list(json.loads((tmp_path / "b" / "results.json").read_text())["methods"]) == ["no-augmentation", "affine"]
    logged = []
    run_benchmark("omniglot", "small", tmp_path / "b", methods=["affine", "no-augmentation"], log=logged.append,
                  lowdata_seeds=2, **kw)
    assert sum('"adding": "lowdata_seeds"' in line for line in logged) == 2
    spread = merge_results([tmp_path / "b"], tmp_path / "m3")["methods"]
    for name, arm in (("no-augmentation", "none"), ("affine", "affine")):  # each real-only row: one arm
        sp = spread[name]["lowdata_seeds"]
        assert sp["n"] == 5 and sp["seeds"] == [0, 1] and list(sp["acc"]) == [arm]
        assert sp["acc"][arm][0] == spread[name]["k"]["1"]["lowdata_acc"]["5"]
    from dataclasses import replace

    from metagan.cli import main
    from metagan.config import DataConfig
    from metagan.data import build_datasets
    heldout = build_datasets(DataConfig(source="omniglot", image_size=28, root=str(omniglot)))[1]
    seed1 = ev.lowdata_accuracy(None, heldout, ev.chosen_classes(heldout, PROTO), replace(PROTO, seed=1), ("affine",))
    assert spread["affine"]["lowdata_seeds"]["acc"]["affine"][1] == seed1["arms"]["affine"]["5"]
    acc, base = (spread[m]["lowdata_seeds"]["acc"][a] for m, a in (("affine", "affine"), ("no-augmentation", "none")))
    gain = 100 * (acc[0] - base[0] + acc[1] - base[1]) / 2
    assert (f"| affine | affine | 0-1 | {acc[0]:.3f}, {acc[1]:.3f} | {gain:+.1f} ± "
            in (tmp_path / "m3" / "results.md").read_text())
    with pytest.raises(ConfigError, match="another benchmark"):
        run_benchmark("omniglot", "full", tmp_path / "b", methods=["no-augmentation"], log=lambda m: None, **kw)
    assert main(["benchmark", "--out", str(tmp_path / "c"), "--lowdata-seeds", "0"]) == 2


def test_a_stored_row_is_not_kept_once_its_checkpoint_file_changed(tmp_path):
    from metagan.benchmark import _weights_changed
    from metagan.metrics.features import sha256
    ck = tmp_path / "model.safetensors"
    ck.write_bytes(b"weights")
    info = {"checkpoint": str(ck), "checkpoint_sha256": sha256(ck)}
    assert not _weights_changed(info)
    ck.write_bytes(b"re-exported weights")
    assert _weights_changed(info)
    ck.unlink()
    assert _weights_changed(info)  # gone: evaluate again (and say why there)
    assert not _weights_changed({"checkpoint": str(ck)})  # rows stored before the hash, without a step: by name


def test_a_row_stored_without_a_hash_is_evaluated_again_when_the_models_step_changed():
    """Rows stored without the file's hash (older results.json files) recorded the model's training step: a
    re-exported model of another step is noticed."""
    from metagan.benchmark import _weights_changed
    name = "pretrained:omniglot-dawson"
    from metagan.checkpoint import load
    step = load(name).step
    assert not _weights_changed({"checkpoint": name, "train_steps": step})
    assert _weights_changed({"checkpoint": name, "train_steps": step - 1})


def _small_benchmark_with(tmp_path, monkeypatch, model: str):
    """Omniglot (or skip), the small protocol made tiny, and a copy of a shipped model -> (data dir, copy);
    the benchmark may not train anything afterwards (train_method raises)."""
    import shutil
    from pathlib import Path

    from metagan import benchmark
    from metagan import evaluate as ev
    omniglot = omniglot_dir()
    monkeypatch.setitem(ev.PROTOCOLS, "small", PROTO)
    ck = tmp_path / f"{model}.safetensors"
    shutil.copy(Path(benchmark.__file__).parents[1] / "pretrained" / f"omniglot-{model}.safetensors", ck)
    return omniglot, ck


def _forbid_training(monkeypatch):
    from metagan import benchmark

    def no_training(*a, **k):
        raise AssertionError("trained a method the benchmark had a model for")
    monkeypatch.setattr(benchmark.harness, "_train_method", no_training)


def test_repeats_of_a_kept_row_adapt_the_model_it_was_evaluated_with(tmp_path, monkeypatch):
    """--lowdata-seeds on a stored row of a trained method: the repeats use the row's checkpoint, not a new
    training run (the small budget would otherwise train the method again)."""
    from metagan import benchmark
    omniglot, ck = _small_benchmark_with(tmp_path, monkeypatch, "fomaml")
    kw = dict(data_root=str(omniglot), shots=(1,), progress=False, log=lambda m: None, methods=["metagan-fomaml"])
    benchmark.run_benchmark("omniglot", "small", tmp_path / "b", checkpoints={"metagan-fomaml": str(ck)}, **kw)
    _forbid_training(monkeypatch)
    row = benchmark.run_benchmark("omniglot", "small", tmp_path / "b", lowdata_seeds=2, **kw)["methods"]["metagan-fomaml"]
    assert row["info"]["checkpoint"] == str(ck) and all(len(a) == 2 for a in row["lowdata_seeds"]["acc"].values())


def test_pretrain_only_is_the_finetune_model_without_adaptation(tmp_path, monkeypatch):
    """pretrain-only reuses pretrain-finetune's checkpoint (no second training run) and does not adapt it."""
    from metagan import benchmark
    from metagan.adapt import load
    omniglot, ck = _small_benchmark_with(tmp_path, monkeypatch, "joint")
    _forbid_training(monkeypatch)
    res = benchmark.run_benchmark("omniglot", "small", tmp_path / "b", data_root=str(omniglot), shots=(1,),
                                  progress=False, log=lambda m: None, checkpoints={"pretrain-finetune": str(ck)},
                                  methods=["pretrain-finetune", "pretrain-only"])
    pf, po = res["methods"]["pretrain-finetune"], res["methods"]["pretrain-only"]
    assert po["info"]["checkpoint"] == pf["info"]["checkpoint"] == str(ck)
    assert pf["info"]["adapt_steps"] == benchmark.BUDGETS["small"]["adapt_steps"] and po["info"]["adapt_steps"] == 0
    assert po["k"]["1"]["fidelity"] != pf["k"]["1"]["fidelity"] or po["k"]["1"]["fd"] != pf["k"]["1"]["fd"]
    assert "pretrain-only: 0 adaptation steps (not adapted" in (tmp_path / "b" / "results.md").read_text()
    # in a folder that already holds pretrain-finetune's row (kept), pretrain-only takes that row's model too
    kw = dict(data_root=str(omniglot), shots=(1,), progress=False, log=lambda m: None)
    benchmark.run_benchmark("omniglot", "small", tmp_path / "c", checkpoints={"pretrain-finetune": str(ck)},
                            methods=["pretrain-finetune"], **kw)
    later = benchmark.run_benchmark("omniglot", "small", tmp_path / "c", methods=["pretrain-finetune", "pretrain-only"],
                                    **kw)["methods"]["pretrain-only"]
    assert later["info"]["checkpoint"] == str(ck)
    assert json.loads(json.dumps(later["k"])) == json.loads(json.dumps(po["k"]))  # the same evaluation, as stored
    # what it samples is the un-adapted model's output
    gen, _ = benchmark._method_generator("pretrain-only", benchmark.BUDGETS["small"], {"pretrain-only": str(ck)},
                                         str(omniglot), tmp_path, False, print)
    model, support = load(ck), torch.rand(3, 1, 28, 28) * 2 - 1
    want = model.adapt(support, 0, torch.Generator().manual_seed(1)).sample(4, torch.Generator().manual_seed(2))
    adapted = model.adapt(support, 5, torch.Generator().manual_seed(1)).sample(4, torch.Generator().manual_seed(2))
    got = gen(support, 4, torch.Generator().manual_seed(2))
    assert torch.equal(got, want) and not torch.equal(got, adapted)
    # --select reaches every GAN method's sampling (the adapted model, the same generator for both draws)
    gen2, _ = benchmark._method_generator("pretrain-finetune", benchmark.BUDGETS["small"],
                                          {"pretrain-finetune": str(ck)}, str(omniglot), tmp_path, False, print, 2.0)
    g = torch.Generator().manual_seed(2)
    want2 = model.adapt(support, 5, g).sample(4, g, select=2.0)
    assert torch.equal(gen2(support, 4, torch.Generator().manual_seed(2)), want2)
    # --keep-generator too: the generator before adaptation, chosen by the adapted discriminator
    gen3, _ = benchmark._method_generator("pretrain-finetune", benchmark.BUDGETS["small"],
                                          {"pretrain-finetune": str(ck)}, str(omniglot), tmp_path, False, print, 2.0,
                                          True)
    g = torch.Generator().manual_seed(2)
    want3 = model.adapt(support, 5, g, keep_generator=True).sample(4, g, select=2.0)
    assert torch.equal(gen3(support, 4, torch.Generator().manual_seed(2)), want3) and not torch.equal(want3, want2)
    # select and keep_generator are part of the protocol: folders written before them count as 1 and false
    head = {"suite": "omniglot", "select": 1.0, "keep_generator": False}
    assert benchmark._header_differences({"suite": "omniglot"}, head) == []
    assert benchmark._header_differences({"suite": "omniglot"}, {**head, "select": 2.0}) == ["select"]
    assert benchmark._header_differences({"suite": "omniglot"}, {**head, "keep_generator": True}) == ["keep_generator"]


def test_paired_difference_is_the_interval_of_the_per_draw_differences():
    from metagan.evaluate import ci95, paired_difference
    a, b = [1.0, 2.0, 3.5], [1.5, 2.25, 4.0]
    diff, half = paired_difference(a, b)
    assert diff == pytest.approx(-5 / 12) and half == pytest.approx(ci95([-0.5, -0.25, -0.5]))
    assert all(x != x for x in paired_difference([1.0, float("nan")], [1.0, 2.0]))  # an undefined draw
    with pytest.raises(ValueError, match="same draws"):
        paired_difference([1.0, 2.0], [1.0])


def test_benchmark_report_pairs_each_metagan_method_with_each_baseline():
    from metagan.benchmark import report_markdown
    from metagan.evaluate import ci95

    def row(fd, fid):
        return {"fd": sum(fd) / len(fd), "fd_ci95": ci95(fd), "fd_draws": fd, "kid": 0.1, "precision": 0.5,
                "recall": 0.5, "density": 0.5, "coverage": 0.5, "fidelity": sum(fid) / len(fid),
                "fidelity_ci95": ci95(fid), "fidelity_draws": fid, "diversity": 1.0, "copy_ratio": 1.0,
                "copy_ratio_real": 1.0, "lowdata_acc": {"5": 0.7}, "protonet_acc": {"mean": 0.9, "ci95": 0.01}}
    base_fd = [0.8, 1.2, 1.0, 0.9, 1.1]  # draws that differ a lot: easy and hard support sets
    ours_fd = [x - 0.05 + e for x, e in zip(base_fd, [0.001, -0.002, 0.0, 0.002, -0.001])]
    fid = [0.95, 0.96, 0.97, 0.94, 0.98]
    nan_fd = [float("nan")] + base_fd[1:]
    results = {"suite": "omniglot", "budget": "small", "adapt_steps": 5, "heldout": "x",
               "protocol": {"classes": 20, "samples": 50, "n_way": 20}, "feature_net": {"file": "f", "sha256": "0" * 64},
               "methods": {"no-augmentation": {"k": {"5": {**dict.fromkeys(row(fid, fid)), "lowdata_acc": {"5": 0.6},
                                                         "protonet_acc": {"mean": 0.8, "ci95": 0.02}}}},
                           "pretrain-only": {"k": {"5": row(base_fd, fid)}},
                           "figr": {"k": {"5": row(nan_fd, [f - 0.2 for f in fid])}},
                           "metagan-metasgd": {"k": {"5": row(ours_fd, [f - 0.01 for f in fid]),
                                                     "1": row(base_fd, fid)}}}}
    ours, base = results["methods"]["metagan-metasgd"]["k"]["5"], results["methods"]["pretrain-only"]["k"]["5"]
    # each method's own interval overlaps the other's: only the pairing separates them
    assert ours["fd"] + ours["fd_ci95"] > base["fd"] - base["fd_ci95"]
    md = report_markdown(results)
    assert "| metagan-metasgd | pretrain-only | -0.050 ± 0.002 (better) | -0.0100 ± 0.0000 (worse) |" in md
    assert "| metagan-metasgd | figr | undefined (non-finite draws) | +0.1900 ± 0.0000 (better) |" in md
    assert "| metagan-metasgd | no-augmentation |" not in md  # nothing generated to compare
    assert "## Paired differences, K = 1" not in md  # no baseline was evaluated at K = 1
    # equal draws: a tie, and a single draw gives no interval
    results["methods"]["metagan-metasgd"]["k"]["5"] = row(base_fd, fid)
    assert "| metagan-metasgd | pretrain-only | +0.000 ± 0.000 (tie) | +0.0000 ± 0.0000 (tie) |" in report_markdown(results)
    for m in results["methods"].values():
        for r in m["k"].values():
            if r.get("fd_draws"):
                r["fd_draws"], r["fidelity_draws"] = r["fd_draws"][1:2], r["fidelity_draws"][1:2]
    assert "| metagan-metasgd | pretrain-only | +0.000 (one draw: no interval) |" in report_markdown(results)


def test_reference_rows_copier_and_real(net):
    """support-copy copies (copy ratio near 0, fidelity high); real is held-out real images of the class (copy
    ratio near 1, FD far below noise's against the same reference)."""
    from metagan.baselines import held_out_real, support_copier
    data = strokes(per_class=16)
    g = torch.Generator().manual_seed(1)  # no two images alike (the bar patterns repeat exactly)
    data.images = [(x.int() + torch.randint(0, 60, x.shape, generator=g)).clamp(0, 255).to(torch.uint8)
                   for x in data.images]
    copy, real = evaluate(support_copier(), data, 5, net, PROTO), evaluate(held_out_real(), data, 5, net, PROTO)
    noise = evaluate(lambda s, n, g: torch.rand(n, *s.shape[1:], generator=g) * 2 - 1, data, 5, net, PROTO)
    assert copy["copy_ratio"] < 0.05 and copy["fidelity"] > 0.9
    assert 0.5 < real["copy_ratio"] < 2 and real["copy_ratio"] == pytest.approx(real["copy_ratio_real"])
    assert real["fd"] < noise["fd"] / 5 and real["fidelity"] > 0.9
    assert copy["lowdata_acc"] is None and real["lowdata_acc"] is None  # references: no classifier


def test_draws_references_and_bootstrap_do_not_depend_on_a_methods_randomness(net):
    """Every method sees the same supports and pools whatever randomness it consumes, and is resampled the same."""
    from metagan import evaluate as ev
    from metagan.data import to_model_space
    data = strokes()
    seen = {}

    def recorder(name, extra):
        def gen(s, n, g):
            seen.setdefault(name, []).append(s.clone())
            torch.rand(extra, generator=g)  # consume a method-dependent amount of its stream
            torch.rand(extra)  # and of the global one
            return s[torch.randint(len(s), (n,), generator=g)]
        return gen
    _, draws = ev._draws(data, PROTO, 5)
    ra, rb = evaluate(recorder("a", 1), data, 5, net, PROTO), evaluate(recorder("b", 1000), data, 5, net, PROTO)
    assert all(torch.equal(x, y) for x, y in zip(seen["a"], seen["b"]))
    assert torch.equal(seen["a"][1], to_model_space(draws[0][1][0]))  # class 0, draw 1
    for per in draws:  # supports, reference and pool partition the class's images
        for s, r, p in per:
            assert len(s) + len(r) + len(p) == 12 and len(r) >= len(p) >= 2
    assert ra["bootstrap"] == rb["bootstrap"] and ra["bootstrap"]["resamples"] == PROTO.bootstrap
    assert torch.equal(ev.bootstrap_indices(6, PROTO), ev.bootstrap_indices(6, PROTO))
    diff, (lo, hi) = ev.paired_bootstrap(ra, rb, "coverage")
    assert len(ra["coverage_boot"]) == PROTO.bootstrap and lo <= diff <= hi
    # FD and KID are pooled distances: no class bootstrap (repeated classes raise them), the t interval over draws
    assert "fd_boot" not in ra and ra["fd_interval"] == [ra["fd"] - ra["fd_ci95"], ra["fd"] + ra["fd_ci95"]]


def test_bootstrap_statistics_match_the_metrics_on_the_resampled_classes():
    from metagan import evaluate as ev
    from metagan.metrics import frechet_distance, prdc
    g = torch.Generator().manual_seed(0)
    ref = [torch.randn(8, 16, generator=g) + i for i in range(6)]
    gen = [torch.randn(9, 16, generator=g) * 0.8 + i for i in range(6)]
    sup = [torch.randn(3, 16, generator=g) + i for i in range(6)]
    st = ev._draw_stats(sup, ref, gen, 7, n_way=6)
    idx = torch.tensor([[0, 0, 2, 3, 5, 5], [0, 1, 2, 3, 4, 5]])
    w = torch.zeros(2, 6, dtype=torch.float64).scatter_add_(1, idx, torch.ones(2, 6, dtype=torch.float64))
    r0, f0 = torch.cat([ref[i] for i in idx[0]]), torch.cat([gen[i][:7] for i in idx[0]])
    assert float(ev._fd_weighted(st, w)[0]) == pytest.approx(frechet_distance(r0, f0), rel=1e-6)
    full = prdc(torch.cat(ref), torch.cat([x[:7] for x in gen]))
    for key, value in full.items():
        assert float(ev._metric_weighted(st, key, w)[1]) == pytest.approx(value)
    x, y = r0.double(), f0.double()
    kxx, kyy, kxy = ((a @ b.T / 16 + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    mmd = (kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - 2 * kxy.mean()
    assert float(ev._kid_weighted(st, w)[0]) == pytest.approx(float(mmd))


def test_splits_are_disjoint():
    from metagan import evaluate as ev
    from metagan.data.omniglot import VALIDATION_ALPHABETS, validation_alphabets
    conf = ev.confirmation_classes(659)
    assert len(set(conf)) == 100
    for budget in ev.PROTOCOLS.values():
        assert not set(conf) & set(ev.class_order(659, budget.seed)[: budget.classes])
    assert VALIDATION_ALPHABETS == validation_alphabets()
    with pytest.raises(ValueError, match="unknown split"):
        ev.split_dataset(None, "test")


def test_header_refuses_another_protocol_version_or_split():
    from metagan.benchmark import _header_differences
    from metagan.evaluate import PROTOCOL_VERSION
    head = {"suite": "omniglot", "protocol_version": PROTOCOL_VERSION, "split": "evaluation"}
    assert _header_differences({"suite": "omniglot"}, head) == ["protocol_version"]  # an old folder: version 1
    assert _header_differences({**head, "split": "confirmation"}, head) == ["split"]
    assert _header_differences(dict(head), head) == []
