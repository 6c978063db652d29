"""torchrun with 2 CPU processes on loopback (gloo): equal to one process, in sync, resumable under any
world size, and a killed rank leaves a loadable checkpoint."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from metagan import checkpoint as ckpt
from metagan.config import apply_overrides, get_preset
from metagan.distributed import Dist, per_rank
from metagan.errors import ConfigError
from metagan.train import train

TINY = ["train.dtype=float64", "task.meta_batch=4", "train.sample_every=0", "train.ckpt_every=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, nproc=2, log_dir=None, **popen):
    """Launch `metagan train` under torchrun; with `log_dir`, each rank's stdout and stderr are also kept whole in
    files there (torchrun's --tee), for `assert_ok` to show when a rank fails."""
    logs = [f"--log-dir={log_dir}", "--tee=3"] if log_dir else []
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
           f"--master-port={free_port()}", *logs, "-m", "metagan", "train", "--no-progress", *args]
    # faulthandler: a rank that aborts (gloo, a signal) prints its Python stack before dying
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    if popen:
        return subprocess.Popen(cmd, env=env, **popen)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def assert_ok(r, log_dir):
    """A torchrun launch exited 0; otherwise fail with torchrun's whole stderr and every rank's log files."""
    if r.returncode == 0:
        return
    ranks = "\n".join(f"--- {p.relative_to(log_dir)} ---\n{p.read_text(errors='replace')}"
                      for p in sorted(log_dir.rglob("*.log")))
    pytest.fail(f"torchrun exited {r.returncode}\n--- torchrun stderr ---\n{r.stderr}\n{ranks}\n"
                f"(rank logs kept in {log_dir})", pytrace=False)


def sets(items):
    return [x for item in items for x in ("--set", item)]


def assert_same(run_a, run_b, tol=1e-12):
    a, b = load_file(str(run_a / ckpt.FILENAME)), load_file(str(run_b / ckpt.FILENAME))
    assert a.keys() == b.keys()
    for k in a:
        if a[k].dtype == torch.uint8:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=tol, msg=k)


def test_two_ranks_equal_one_rank_with_the_same_tasks(tmp_path):
    r = torchrun(["--preset", "tiny", "--out-dir", str(tmp_path / "two"), *sets(TINY + ["train.steps=3"])],
                 log_dir=tmp_path / "logs")
    assert_ok(r, tmp_path / "logs")
    assert r.stdout.count("run folder:") == 1  # only rank 0 writes and reports
    one = train(apply_overrides(get_preset("tiny"), TINY + ["train.steps=3"]), out_dir=tmp_path / "one",
                progress=False)
    # the parameters were checked identical across ranks at the final checkpoint (check_in_sync)
    assert_same(next((tmp_path / "two").iterdir()), one)


def test_resume_under_a_different_world_size(tmp_path):
    r = torchrun(["--preset", "tiny", "--out-dir", str(tmp_path / "a"), *sets(TINY + ["train.steps=2"])],
                 log_dir=tmp_path / "logs-a")
    assert_ok(r, tmp_path / "logs-a")
    run = next((tmp_path / "a").iterdir())
    train(apply_overrides(get_preset("tiny"), TINY + ["train.steps=4"]), resume=run, progress=False)  # 2 -> 1
    r = torchrun(["--resume", str(run), *sets(["train.steps=5"])], log_dir=tmp_path / "logs-b")  # 1 -> 2
    assert_ok(r, tmp_path / "logs-b")
    straight = train(apply_overrides(get_preset("tiny"), TINY + ["train.steps=5"]), out_dir=tmp_path / "b",
                     progress=False)
    assert ckpt.load(run).step == 5
    assert_same(run, straight)


def test_killing_a_rank_stops_the_run_and_leaves_a_loadable_checkpoint(tmp_path):
    proc = torchrun(["--preset", "tiny", "--out-dir", str(tmp_path), *sets(["task.meta_batch=4", "train.steps=100000",
                    "train.ckpt_every=3", "train.sample_every=0"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob("*/" + ckpt.FILENAME)) and time.time() < deadline:
            time.sleep(0.5)
        assert list(tmp_path.glob("*/" + ckpt.FILENAME)), "no checkpoint appeared"
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[-1]), signal.SIGKILL)
        proc.wait(timeout=90)  # the survivor is stopped within a bounded time, not left hanging
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    run = next(tmp_path.iterdir())
    step = ckpt.load(run).step
    assert step >= 3 and step % 3 == 0
    train(apply_overrides(get_preset("tiny"), [f"train.steps={step + 2}", "task.meta_batch=4"]), resume=run,
          progress=False)
    assert ckpt.load(run).step == step + 2


def test_meta_batch_must_split_evenly():
    assert per_rank(8, Dist(0, 2)) == 4
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        per_rank(5, Dist(1, 2))
