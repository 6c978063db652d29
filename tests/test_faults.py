"""Fault injection: a process killed while writing a checkpoint, a full disk, leftovers of killed writes.

Each fault must leave the previous checkpoint loadable, say what happened in one line, and be cleaned up at
the next start. (Ctrl-C is tested in test_train.py.) An interrupted benchmark keeps the methods it finished.
"""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import omniglot_dir

from metagan import checkpoint as ckpt
from metagan.cli import main
from metagan.config import apply_overrides, get_preset
from metagan.train import train

TINY = ["train.sample_every=0"]

# A training process whose checkpoint write stalls after writing part of the file: the test kills it there.
STALLED_WRITER = """
import sys, time
from metagan import checkpoint as ckpt
from metagan.config import apply_overrides, get_preset
from metagan.train import train

def stalled(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
        f.write(b"partial")
    time.sleep(600)

ckpt.save_file = stalled
train(apply_overrides(get_preset("tiny"), sys.argv[2:]), resume=sys.argv[1], progress=False)
"""


def tiny(*overrides):
    return apply_overrides(get_preset("tiny"), [*TINY, *overrides])


def leftovers(run):
    return sorted(p.name for p in run.iterdir() if ckpt.TMP_MARK in p.name)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint_and_the_next_start_cleans_up(tmp_path):
    run = train(tiny("train.steps=2"), out_dir=tmp_path, progress=False)
    before = (run / ckpt.FILENAME).read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(run), *TINY, "train.steps=4"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not leftovers(run) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        stalled = [f"{ckpt.FILENAME}{ckpt.TMP_MARK}{proc.pid}"]
        assert leftovers(run) == stalled, proc.stderr.read() if proc.poll() is not None else "no write started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (run / ckpt.FILENAME).read_bytes() == before and ckpt.load(run).step == 2
    train(tiny("train.steps=3"), resume=run, progress=False)  # the next start
    assert leftovers(run) == [] and ckpt.load(run).step == 3


def test_only_the_leftovers_of_dead_processes_are_removed(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = tmp_path / f"checkpoint.safetensors{ckpt.TMP_MARK}{sleeper.pid}"
        gone = tmp_path / f"checkpoint.safetensors{ckpt.TMP_MARK}{_dead_pid()}"
        other = tmp_path / "notes.txt"
        for p in (live, gone, other):
            p.write_bytes(b"x")
        assert ckpt.remove_stale_tmp(tmp_path) == [gone]
        assert live.exists() and other.exists() and not gone.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ckpt.remove_stale_tmp(tmp_path) == [live]


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_full_disk_gives_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    run = train(tiny("train.steps=2"), out_dir=tmp_path, progress=False)
    before = (run / ckpt.FILENAME).read_bytes()

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    rc = main(["train", "--no-progress", "--resume", str(run), "--set", "train.steps=4"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0, err
    assert err.startswith("error: could not write") and "No space left on device" in err and "intact" in err
    assert (run / ckpt.FILENAME).read_bytes() == before and leftovers(run) == []
    monkeypatch.undo()
    train(tiny("train.steps=4"), resume=run, progress=False)  # space freed: it goes on from step 2
    assert ckpt.load(run).step == 4


@pytest.mark.parametrize("width", ["model.g_width=1000000", "model.d_width=5000", "data.image_size=100000"])
def test_a_checkpoint_asking_for_an_absurd_model_is_refused_before_anything_is_built(tmp_path, width):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    run = train(tiny("train.steps=1"), out_dir=tmp_path, progress=False)
    with safe_open(str(run / ckpt.FILENAME), "pt") as f:
        md, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(md["config"])
    section, key = width.split("=")[0].split(".")
    cfg[section][key] = int(width.split("=")[1])
    save_file(tensors, str(run / ckpt.FILENAME), metadata={**md, "config": json.dumps(cfg)})
    t0 = time.perf_counter()
    with pytest.raises(ckpt.CheckpointError, match=f"{width} is above its limit") as e:
        ckpt.load(run)
    assert time.perf_counter() - t0 < 0.5 and "\n" not in str(e.value)


def test_a_checkpoint_whose_tensors_do_not_fit_its_config_is_refused_before_reading_them(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    run = train(tiny("train.steps=1"), out_dir=tmp_path, progress=False)
    with safe_open(str(run / ckpt.FILENAME), "pt") as f:
        md, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(md["config"])
    cfg["model"]["g_width"] = 4096  # within the limits, but not the model the tensors belong to
    save_file(tensors, str(tmp_path / "a.safetensors"), metadata={**md, "config": json.dumps(cfg)})
    with pytest.raises(ckpt.CheckpointError, match="but its config's model needs"):
        ckpt.load(tmp_path / "a.safetensors")
    extra = {**tensors, "meta.g.extra": tensors["rng.tasks"][:4].float()}
    save_file(extra, str(tmp_path / "b.safetensors"), metadata=md)
    with pytest.raises(ckpt.CheckpointError, match="does not have"):
        ckpt.load(tmp_path / "b.safetensors")
    fewer = {k: v for k, v in tensors.items() if k != "meta.d.fc.weight" and not k.startswith("opt.")}
    save_file(fewer, str(tmp_path / "c.safetensors"), metadata=md)
    with pytest.raises(ckpt.CheckpointError, match="lacks tensors"):
        ckpt.load(tmp_path / "c.safetensors")


def test_an_interrupted_benchmark_keeps_finished_methods_and_resumes(tmp_path, monkeypatch):
    """Interrupted between methods, and again while writing results.json: the folder keeps what was finished and
    the same command completes it."""
    import json

    from metagan import benchmark
    from metagan import evaluate as ev
    from metagan.evaluate import Protocol

    omniglot = omniglot_dir()
    monkeypatch.setitem(ev.PROTOCOLS, "small", Protocol(classes=6, samples=12, support_draws=2, n_way=6,
                                                         episodes=20, lowdata_n=(5,), lowdata_generated=4,
                                                         lowdata_updates=2, bootstrap=10))
    kw = dict(data_root=str(omniglot), shots=(1,), progress=False, log=lambda m: None)
    out = tmp_path / "bench"
    method_generator = benchmark._method_generator

    def killed_at_affine(name, *args, **kwargs):
        if name == "affine":
            raise KeyboardInterrupt
        return method_generator(name, *args, **kwargs)

    monkeypatch.setattr(benchmark.omniglot, "_method_generator", killed_at_affine)
    with pytest.raises(KeyboardInterrupt):
        benchmark.run_benchmark("omniglot", "small", out, methods=["support-copy", "affine"], **kw)
    finished = json.loads((out / "results.json").read_text())
    assert list(finished["methods"]) == ["support-copy"]

    replace = os.replace  # killed again, this time while results.json is being replaced

    def killed_while_replacing(src, dst):
        if str(dst).endswith("results.json"):
            raise KeyboardInterrupt
        return replace(src, dst)

    monkeypatch.setattr(benchmark.omniglot, "_method_generator", method_generator)
    monkeypatch.setattr(os, "replace", killed_while_replacing)
    with pytest.raises(KeyboardInterrupt):
        benchmark.run_benchmark("omniglot", "small", out, methods=["support-copy", "affine"], **kw)
    assert json.loads((out / "results.json").read_text()) == finished  # the previous file, whole

    monkeypatch.setattr(os, "replace", replace)
    logged = []
    done = benchmark.run_benchmark("omniglot", "small", out, methods=["support-copy", "affine"],
                                   **{**kw, "log": logged.append})
    assert list(done["methods"]) == ["support-copy", "affine"]
    assert done["methods"]["support-copy"] == finished["methods"]["support-copy"]
    assert any('"kept": "support-copy"' in line for line in logged)
