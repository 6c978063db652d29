"""Meta-training throughput with 1 and 2 processes (torchrun, gloo, one thread each) and the scaling
efficiency, measured in one run. Prints one JSON line per measurement.

    python benchmarks/distributed.py [--preset omniglot-fomaml] [--steps 30] [--meta-batch 8] [--data-dir DIR]

efficiency = tasks/s with N processes / (N x tasks/s with 1 process); the first steps (warm-up) are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nproc: int, args, out: Path) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
           f"--master-port={_port()}", "-m", "metagan", "train", "--preset", args.preset, "--no-progress",
           "--out-dir", str(out), "--set", f"train.steps={args.steps}", "--set", f"task.meta_batch={args.meta_batch}",
           "--set", "train.log_every=1", "--set", "train.sample_every=0", "--set", "train.ckpt_every=0",
           "--set", "train.threads=1"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
    log = [json.loads(x) for x in next(out.iterdir()).joinpath("log.jsonl").read_text().splitlines()]
    timed = log[args.warmup:]
    seconds = sum(r["sec_per_step"] for r in timed)
    return len(timed) * args.meta_batch / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="omniglot-fomaml")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--meta-batch", type=int, default=8)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = run(1, args, Path(tmp) / "p1")
        print(json.dumps({"preset": args.preset, "meta_batch": args.meta_batch, "processes": 1,
                          "tasks_per_s": round(base, 2)}), flush=True)
        two = run(2, args, Path(tmp) / "p2")
        print(json.dumps({"preset": args.preset, "meta_batch": args.meta_batch, "processes": 2,
                          "tasks_per_s": round(two, 2), "speedup": round(two / base, 3),
                          "efficiency": round(two / (2 * base), 3)}), flush=True)


if __name__ == "__main__":
    main()
