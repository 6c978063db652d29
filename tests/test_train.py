"""Training loop, run folders, checkpoints (exact resume, atomic writes, safe loading) and bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from metagan import checkpoint as ckpt
from metagan.config import apply_overrides, get_preset
from metagan.errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from metagan.train import train, trim_log


def tiny(*overrides):
    return apply_overrides(get_preset("tiny"), list(overrides))


def test_run_folder_holds_config_log_grids_and_checkpoint(tmp_path):
    run = train(tiny("train.steps=4"), out_dir=tmp_path, name="t", progress=False)
    assert run.name == "00000-t"
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"d_loss", "g_loss", "sec_per_step", "tasks_per_s"} <= set(log[0])
    assert sorted(p.name for p in run.glob("samples-*.png")) == ["samples-000002.png", "samples-000004.png"]
    assert ckpt.load(run).step == 4
    assert train(tiny("train.steps=1"), out_dir=tmp_path, name="t", progress=False).name == "00001-t"


def test_keep_every_keeps_numbered_snapshots_that_resume(tmp_path):
    run = train(tiny("train.steps=4", "train.keep_every=2", "train.sample_every=0"), out_dir=tmp_path,
                progress=False)
    kept = sorted(p.name for p in run.glob("checkpoint-*.safetensors"))
    assert kept == ["checkpoint-000002.safetensors", "checkpoint-000004.safetensors"]
    assert [ckpt.load(run / k).step for k in kept] == [2, 4]
    a, b = load_file(str(run / kept[1])), load_file(str(run / ckpt.FILENAME))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(load_file(str(run / kept[0]))["meta.g.fc.weight"], a["meta.g.fc.weight"])


def test_ema_warms_up_so_a_short_run_is_not_its_initialisation(tmp_path):
    from metagan.train import ema_decay
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 10**6) == 0.999
    init = load_file(str(train(tiny("train.steps=1", "train.sample_every=0"), out_dir=tmp_path / "a",
                                    progress=False) / ckpt.FILENAME))
    two = load_file(str(train(tiny("train.steps=2", "train.sample_every=0"), out_dir=tmp_path / "b",
                                   progress=False) / ckpt.FILENAME))
    # the second update mixes the EMA after step 1 (the same in both runs) with decay 2/11
    k = "g.fc.weight"
    expect = two["meta." + k] * (9 / 11) + init["ema." + k] * (2 / 11)
    torch.testing.assert_close(two["ema." + k], expect)


def test_init_from_starts_any_learner_from_another_runs_players(tmp_path):
    joint = train(tiny("meta.learner=joint", "train.steps=2", "train.sample_every=0", "train.seed=5"),
                  out_dir=tmp_path / "j", progress=False)
    src = load_file(str(joint / ckpt.FILENAME))
    run = train(tiny("meta.learner=metasgd", "train.steps=1", "train.sample_every=0", f"train.init_from={joint}"),
                out_dir=tmp_path / "m", progress=False)
    one = ckpt.load(run)
    assert one.step == 1 and one.config.train.init_from == str(joint)
    fresh = ckpt.load(train(tiny("meta.learner=metasgd", "train.steps=1", "train.sample_every=0"),
                            out_dir=tmp_path / "f", progress=False))
    for k, v in one.meta["g"].items():  # one Adam step (lr 1e-3) away from the source, not from a fresh init
        assert (v - src[f"ema.g.{k}"]).abs().max() < 2e-3, k
    assert any((v - fresh.meta["g"][k]).abs().max() > 1e-2 for k, v in one.meta["g"].items())
    # the learned rates start fresh (at meta.inner_lr_g), one Adam step of meta.outer_lr_rates away
    assert (one.meta["lr_g"]["fc.weight"] - 0.05).abs().max() <= 1.5e-4
    wider = tiny("train.steps=1", "model.g_width=6", f"train.init_from={joint}")
    with pytest.raises(CheckpointError, match="train.init_from"):
        train(wider, out_dir=tmp_path / "w", progress=False)


def test_init_from_starts_the_generator_from_the_sources_ema_generator(tmp_path):
    # the EMA generator is the model the source adapts and samples with; its raw generator can be much worse
    # (a GAN's weights oscillate), and the new run's EMA warms up from step 0, so it must start from the EMA
    joint = train(tiny("meta.learner=joint", "train.steps=2", "train.sample_every=0"), out_dir=tmp_path / "j",
                  progress=False)
    src = ckpt.load(joint)
    src.ema["g"] = {k: v + 0.5 for k, v in src.meta["g"].items()}  # an EMA far from the raw generator
    ckpt.save(tmp_path / "src.safetensors", src)
    one = ckpt.load(train(tiny("meta.learner=fomaml", "train.steps=1", "train.sample_every=0",
                               f"train.init_from={tmp_path / 'src.safetensors'}"), out_dir=tmp_path / "m",
                          progress=False))
    for k, v in one.meta["g"].items():
        assert (v - src.ema["g"][k]).abs().max() < 2e-3, k
        assert (one.ema["g"][k] - src.ema["g"][k]).abs().max() < 2e-3, k
    for k, v in one.meta["d"].items():
        assert (v - src.meta["d"][k]).abs().max() < 2e-3, k


@pytest.mark.parametrize("learner", ["fomaml", "metasgd", "reptile", "metasgd meta.rates=tensor",
                                     "metasgd meta.rates=step meta.inner_steps=2 train.adapt_steps=3",
                                     "maml model.condition=image"])
def test_resume_continues_bit_for_bit(tmp_path, learner):
    learner, *extra = learner.split()  # metasgd with one learned rate per tensor: see the next test too
    cfg = tiny(f"meta.learner={learner}", *extra, "train.steps=4", "train.ckpt_every=0", "train.sample_every=0")
    straight = train(cfg, out_dir=tmp_path / "a", progress=False)
    half = train(apply_overrides(cfg, ["train.steps=2"]), out_dir=tmp_path / "b", progress=False)
    resumed = train(cfg, resume=half, progress=False)
    assert resumed == half
    a, b = load_file(str(straight / ckpt.FILENAME)), load_file(str(resumed / ckpt.FILENAME))
    assert a.keys() == b.keys()
    assert any(k.startswith("opt.") for k in a) and "rng.tasks" in a and any(k.startswith("ema.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the steps really moved the parameters
    init = train(apply_overrides(cfg, ["train.steps=1"]), out_dir=tmp_path / "c", progress=False)
    assert not torch.equal(load_file(str(init / ckpt.FILENAME))["meta.g.fc.weight"], a["meta.g.fc.weight"])


def test_nan_stops_training_and_keeps_the_checkpoint(tmp_path):
    run = train(tiny("train.steps=2"), out_dir=tmp_path, progress=False)
    before = (run / ckpt.FILENAME).read_bytes()
    bad = tiny("train.steps=6", "meta.inner_lr_d=1e38", "meta.inner_lr_g=1e38")
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(bad, resume=run, progress=False)
    assert (run / ckpt.FILENAME).read_bytes() == before
    assert ckpt.load(run).step == 2


@pytest.mark.parametrize("fault, expected, message", [
    (OSError("disk full"), CheckpointError, "could not write .* the previous checkpoint.safetensors is intact"),
    (KeyboardInterrupt(), KeyboardInterrupt, "interrupted again while writing"),  # Ctrl-C during the final write
])
def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch, fault, expected, message):
    run = train(tiny("train.steps=2"), out_dir=tmp_path, progress=False)
    before = (run / ckpt.FILENAME).read_bytes()

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise fault

    monkeypatch.setattr(ckpt, "save_file", broken_save)
    with pytest.raises(expected, match=message):
        train(tiny("train.steps=4"), resume=run, progress=False)
    assert (run / ckpt.FILENAME).read_bytes() == before
    assert [p.name for p in run.iterdir() if ".tmp" in p.name] == []


def test_checkpoint_of_another_model_is_refused(tmp_path):
    run = train(tiny("train.steps=1"), out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="another model"):
        train(tiny("train.steps=2", "model.g_width=8"), resume=run, progress=False)


def test_corrupt_or_foreign_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable"):
        ckpt.load(bad)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pickle"})
    with pytest.raises(CheckpointError, match="not a metagan checkpoint"):
        ckpt.load(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.load(tmp_path / "missing")


def test_bad_config_values():
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("nope")
    with pytest.raises(ConfigError, match="unknown config key meta.inner_stepz"):
        tiny("meta.inner_stepz=3")
    with pytest.raises(ConfigError, match="task.k_shot must be at least 1"):
        tiny("task.k_shot=0")
    with pytest.raises(ConfigError, match="expected int"):
        tiny("meta.inner_steps=three")
    with pytest.raises(ConfigError, match="not one of"):
        tiny("meta.learner=sgd")
    with pytest.raises(ConfigError, match="model.condition=image"):
        tiny("loss.mismatch=1")
    with pytest.raises(ConfigError, match="ns or hinge"):
        tiny("model.condition=image", "loss.kind=wgan-gp", "loss.mismatch=1")
    with pytest.raises(ConfigError, match="task.meta_batch to at least 2"):
        tiny("model.condition=image", "task.meta_batch=1", "loss.mismatch=1")
    with pytest.raises(ConfigError, match="loss.diversity must be non-negative"):
        tiny("loss.diversity=-1")


# Options removed after metagan 0.1.0, as a 0.1.0 config stored them where they did nothing.
NOOP_0_1_0 = {"loss": {"inner_adv": 1.0, "inner_mmd": 0.0, "outer_select": 0.0, "select_tau": 0.5},
              "model": {"e_dim": 16, "d_depth": 2, "g_skip": "half", "g_out": "decode"},
              "meta": {"grad_clip": 0.0}}


def _stored(cfg, removed):
    d = cfg.to_dict()
    for section, values in removed.items():
        d[section].update(values)
    return json.dumps(d)


def test_configs_of_metagan_0_1_0_load_where_the_removed_options_did_nothing():
    from metagan.config import config_from_json
    for cfg in (tiny("loss.diversity=0.2"), get_preset("omniglot-metasgd")):
        g_out = "warp" if cfg.model.condition == "image" else "decode"
        noop = {**NOOP_0_1_0, "model": {**NOOP_0_1_0["model"], "g_out": g_out}}
        assert config_from_json(_stored(cfg, noop)) == cfg
        assert config_from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("key, value", [
    ("loss.inner_mmd", 1.0), ("loss.inner_adv", 0.5), ("loss.outer_select", 10.0), ("model.d_depth", 3),
    ("model.g_skip", "full"), ("model.g_out", "decode"), ("model.condition", "support"), ("meta.grad_clip", 1.0)])
def test_configs_of_metagan_0_1_0_that_used_a_removed_option_are_refused_naming_that_release(key, value):
    from metagan.config import config_from_json
    section, sub = key.split(".")
    paired = {**NOOP_0_1_0, "model": {**NOOP_0_1_0["model"], "g_out": "warp"}}
    text = _stored(tiny("model.condition=image"), {**paired, section: {**paired.get(section, {}), sub: value}})
    with pytest.raises(ConfigError, match=rf"{key}={value!r} was removed after metagan 0\.1\.0.*metagan 0\.1\.0 "
                                          "can load this config"):
        config_from_json(text)


def test_a_0_1_0_paired_config_without_g_out_had_the_drawing_generator_and_is_refused():
    from metagan.config import config_from_json
    d = tiny("model.condition=image").to_dict()
    d["model"]["e_dim"] = 32  # a 0.1.0 config written before model.g_out existed: the default then, decode
    with pytest.raises(ConfigError, match="model.g_out='decode' was removed"):
        config_from_json(json.dumps(d))


def test_a_checkpoint_whose_config_used_a_removed_option_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file
    run = train(tiny("train.steps=1", "train.sample_every=0"), out_dir=tmp_path, progress=False)
    with safe_open(str(run / ckpt.FILENAME), framework="pt") as f:
        md = f.metadata()
    tensors = load_file(str(run / ckpt.FILENAME))
    for value, ok in ((0.0, True), (1.0, False)):
        md["config"] = _stored(ckpt.load(run).config, {**NOOP_0_1_0, "loss": {"inner_mmd": value}})
        save_file(tensors, str(tmp_path / "old.safetensors"), metadata=md)
        if ok:
            assert ckpt.load(tmp_path / "old.safetensors").config == ckpt.load(run).config
        else:
            with pytest.raises(CheckpointError, match="loss.inner_mmd=1.0 was removed after metagan 0.1.0"):
                ckpt.load(tmp_path / "old.safetensors")


def test_mismatch_pairs_each_task_with_another_tasks_class(tmp_path):
    from metagan.data import TaskSampler, build_datasets
    from metagan.system import build_system
    from metagan.train import sample_tasks
    cfg = tiny("model.condition=image", "loss.mismatch=1", "task.meta_batch=3")
    system = build_system(cfg)
    train_ds, _ = build_datasets(cfg.data)
    sampler = TaskSampler(train_ds, cfg.task.k_shot, cfg.task.q_query, cfg.task.meta_batch)
    tasks = sample_tasks(system, sampler, torch.Generator().manual_seed(0), torch.float32)
    torch.testing.assert_close(tasks["noise"]["other"], tasks["support"][[1, 2, 0]])
    assert "other" not in sample_tasks(build_system(tiny("model.condition=image")), sampler,
                                       torch.Generator().manual_seed(0), torch.float32)["noise"]
    run = train(apply_overrides(cfg, ["train.steps=2", "train.sample_every=0"]), out_dir=tmp_path,
                progress=False)
    assert ckpt.load(run).step == 2


def test_class_smaller_than_k_plus_q_is_refused(tmp_path):
    with pytest.raises(DataError, match="k_shot"):
        train(tiny("task.k_shot=150", "task.q_query=100"), out_dir=tmp_path, progress=False)


def test_cuda_request_without_a_gpu_is_refused(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        train(tiny("train.device=cuda"), out_dir=tmp_path, progress=False)


def test_clamp_rates_projects_metasgds_learned_rates_onto_non_negative_values(tmp_path):
    """meta.clamp_rates: after the outer step every learned rate is max(rate, 0), the rest as without it."""
    args = ("meta.learner=metasgd", "train.steps=1", "train.sample_every=0", "meta.inner_lr_g=0.0005",
            "meta.inner_lr_d=0.0005", "meta.outer_lr_rates=0.01")
    free = ckpt.load(train(tiny(*args), out_dir=tmp_path / "a", progress=False)).meta
    held = ckpt.load(train(tiny(*args, "meta.clamp_rates=true"), out_dir=tmp_path / "b", progress=False)).meta
    assert any((v < 0).any() for grp in ("lr_g", "lr_d") for v in free[grp].values())  # the test can fail
    for grp in ("lr_g", "lr_d"):
        for k, v in free[grp].items():
            torch.testing.assert_close(held[grp][k], v.clamp(min=0), rtol=0, atol=0)
    for grp in ("g", "d"):
        assert all(torch.equal(held[grp][k], v) for k, v in free[grp].items())
    with pytest.raises(ConfigError, match="meta.learner=metasgd"):
        train(tiny("meta.clamp_rates=true"), out_dir=tmp_path / "c", progress=False)


def test_metasgd_per_tensor_rates_are_stored_one_per_tensor_and_checked(tmp_path):
    """meta.rates=tensor: the checkpoint holds one learned rate per parameter tensor, and they move."""
    run = train(tiny("meta.learner=metasgd", "meta.rates=tensor", "train.steps=2", "train.sample_every=0",
                     "meta.outer_lr_rates=0.01"), out_dir=tmp_path / "a", progress=False)
    meta = ckpt.load(run).meta
    assert all(v.ndim == 0 for grp in ("lr_g", "lr_d") for v in meta[grp].values())
    assert set(meta["lr_g"]) == set(meta["g"]) and set(meta["lr_d"]) == set(meta["d"])
    assert any(float(v) != 0.05 for v in meta["lr_g"].values())  # the rates moved
    with pytest.raises(ConfigError, match="meta.learner=metasgd"):
        train(tiny("meta.rates=tensor"), out_dir=tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="meta.rates='layer' is not one of"):
        train(tiny("meta.learner=metasgd", "meta.rates=layer"), out_dir=tmp_path / "c", progress=False)


def _logged_steps(run):
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_ctrl_c_writes_a_checkpoint_at_the_step_it_stopped_on_and_resumes_exactly(tmp_path):
    sets = ["train.dtype=float64", "train.sample_every=0", "train.ckpt_every=0"]
    cmd = [sys.executable, "-m", "metagan", "train", "--no-progress", "--preset", "tiny", "--out-dir", str(tmp_path),
           *[x for s in sets + ["train.steps=100000"] for x in ("--set", s)]]
    # a child inherits an ignored SIGINT, and a runner started in the background by a non-interactive shell (`cmd &`
    # without job control) has SIGINT ignored from the start: start the child at the default
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(p.stat().st_size for p in tmp_path.glob("*/log.jsonl")):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    run = next(tmp_path.iterdir())
    step = ckpt.load(run).step
    assert step >= 1 and _logged_steps(run)[-1] == step  # nothing logged is lost
    assert f"stopped at step {step}, checkpoint written to {run / ckpt.FILENAME}" in err
    assert [p.name for p in run.iterdir() if ".tmp-" in p.name] == []
    resumed = train(tiny(*sets, f"train.steps={step + 2}"), resume=run, progress=False)
    straight = train(tiny(*sets, f"train.steps={step + 2}"), out_dir=tmp_path / "straight", progress=False)
    a, b = load_file(str(straight / ckpt.FILENAME)), load_file(str(resumed / ckpt.FILENAME))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _logged_steps(resumed) == list(range(1, step + 3))


def test_resuming_drops_the_log_lines_after_the_checkpoint(tmp_path):
    run = train(tiny("train.steps=4", "train.sample_every=0", "train.keep_every=2"), out_dir=tmp_path,
                progress=False)
    assert _logged_steps(run) == [1, 2, 3, 4]
    with open(run / "log.jsonl", "a") as log:
        log.write('{"step": 5, "d_lo')  # a line cut short by a kill
    train(tiny("train.steps=4", "train.sample_every=0"), resume=run / "checkpoint-000002.safetensors",
          progress=False)
    assert _logged_steps(run) == [1, 2, 3, 4]
    trim_log(run / "log.jsonl", 1)
    assert _logged_steps(run) == [1]
