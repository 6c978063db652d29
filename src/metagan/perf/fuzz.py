"""Coverage-guided fuzzing of the readers of untrusted files, with Atheris (libFuzzer for Python):

    pip install -e ".[fuzz]"
    metagan perf fuzz --seconds 60                # each target for 60 s; one JSON line per target

Targets (TARGETS): `image`, `metagan.data.read_image` on the bytes as a file (DataError or a (C, 8, 8) uint8
tensor), and `checkpoint`, `metagan.checkpoint.load` on them (CheckpointError or a Checkpoint). Anything else,
another exception or a wrong result, is a finding: libFuzzer stops, saves the input as OUT/<target>/crash-<sha1>
and the line reports it with the traceback's last line. Seeds: small valid images of every format PIL writes,
and a tiny checkpoint. Each target runs in its own process (libFuzzer exits when its time is up), with PIL and
metagan instrumented for coverage (safetensors' parser is Rust: its branches are not seen).
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = ("image", "checkpoint")

# The child process: instrument PIL and metagan as they are imported, then fuzz one target.
_ENTRY = """
import sys, atheris
with atheris.instrument_imports(include=["PIL", "metagan"]):
    from metagan.perf import fuzz
fuzz.child(sys.argv[1:])
"""


def fuzz(targets=TARGETS, seconds: float = 60, out: str | os.PathLike | None = None) -> list[dict]:
    """Fuzz each target for `seconds`; one record each: inputs executed, coverage, findings (crash files)."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError('metagan perf fuzz needs Atheris: pip install -e ".[fuzz]" (or pip install atheris)') \
            from None
    out = Path(out or tempfile.mkdtemp(prefix="metagan-fuzz-"))
    return [_run(target, seconds, out / target) for target in targets]


def _run(target: str, seconds: float, work: Path) -> dict:
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    args = [f"-max_total_time={max(1, round(seconds))}", "-timeout=20", "-rss_limit_mb=4096", "-max_len=65536",
            f"-artifact_prefix={work}/", str(corpus)]
    proc = subprocess.run([sys.executable, "-c", _ENTRY, target, *args], capture_output=True, text=True,
                          timeout=seconds + 600)
    log = proc.stdout + proc.stderr
    (work / "fuzz.log").write_text(log)
    done = re.findall(r"Done (\d+) runs in (\d+) second", log)
    stats = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", log)
    crashes = sorted(str(p) for p in work.glob("crash-*")) + sorted(str(p) for p in work.glob("timeout-*"))
    errors = [line for line in log.splitlines() if re.match(r"^\w*(Error|Exception)\b.*:", line)]
    return {"bench": "fuzz", "target": target, "seconds": seconds, "exit_code": proc.returncode,
            "inputs": int(done[-1][0]) if done else (int(stats[-1][0]) if stats else None),
            "coverage": int(stats[-1][1]) if stats else None, "corpus": len(list(corpus.iterdir())),
            "findings": [{"input": c, "error": errors[-1] if errors else None} for c in crashes],
            "log": str(work / "fuzz.log")}


def child(argv: list[str]) -> None:
    """In the child process (see _ENTRY): run libFuzzer on one target; it exits the process when done."""
    import atheris

    target, libfuzzer_args = argv[0], argv[1:]
    path = Path(tempfile.mkdtemp(prefix="metagan-fuzz-input-")) / "input"
    check = {"image": check_image, "checkpoint": check_checkpoint}[target]

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        check(path)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def check_image(path: Path) -> None:
    """read_image gives a DataError or a (C, 8, 8) uint8 tensor; anything else raises AssertionError (a finding)."""
    import torch

    from ..data import read_image
    from ..errors import DataError

    for channels in (1, 3):
        try:
            x = read_image(path, 8, channels)
        except DataError:
            return
        assert x.dtype == torch.uint8 and tuple(x.shape) == (channels, 8, 8), (x.dtype, x.shape)


def check_checkpoint(path: Path) -> None:
    """checkpoint.load gives a CheckpointError or a Checkpoint whose step is >= 0."""
    from .. import checkpoint as ckpt

    try:
        ck = ckpt.load(path)
    except ckpt.CheckpointError:
        return
    assert isinstance(ck, ckpt.Checkpoint) and ck.step >= 0


def seeds(target: str) -> list[bytes]:
    """Valid inputs to start from: mutating them reaches the decoders' depths, which random bytes do not."""
    if target == "image":
        from PIL import Image

        out = []
        for fmt, mode in [("PNG", "L"), ("PNG", "RGBA"), ("PNG", "I;16"), ("PNG", "P"), ("GIF", "P"),
                          ("BMP", "RGB"), ("JPEG", "RGB"), ("TIFF", "F"), ("WEBP", "RGBA"), ("PPM", "RGB")]:
            buf = io.BytesIO()
            Image.new(mode, (6, 4)).save(buf, format=fmt)
            out.append(buf.getvalue())
        return out
    return [tiny_checkpoint()]


def tiny_checkpoint() -> bytes:
    """A fresh (untrained) checkpoint of the tiny preset at width 2: a few kB."""
    from .. import checkpoint as ckpt
    from ..config import apply_overrides, get_preset
    from ..system import build_system
    from ..train import init_state, to_checkpoint

    cfg = apply_overrides(get_preset("tiny"), ["model.z_dim=2", "model.g_width=2", "model.d_width=2"])
    with tempfile.TemporaryDirectory() as d:
        path = ckpt.save(Path(d) / "seed.safetensors", to_checkpoint(cfg, init_state(build_system(cfg))))
        return path.read_bytes()


__all__ = ["fuzz", "TARGETS", "check_image", "check_checkpoint", "seeds"]
