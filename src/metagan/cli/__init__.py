"""Command line: thin wrappers that parse, resolve the config and call the library.

    metagan demo                                           # the whole pipeline on the embedded digits
    metagan train --preset digits-demo [--set meta.inner_steps=3 ...] [--dry-run] [--resume RUN]
    metagan adapt --checkpoint RUN --support a.png b.png ... --steps 10 --num 64 --seed 0 --out DIR
    metagan presets                                        # list the presets
    metagan reply --checkpoint RUN --conversations F --prompt TEXT   # a dialogue model adapted to a topic
    metagan export --checkpoint RUN --out model.safetensors   # a small shippable copy of a run
    metagan evaluate --checkpoint RUN [--shots 1 5]        # one Omniglot model on held-out classes
    metagan rank --checkpoint RUN/checkpoint-*.safetensors    # rank a run's snapshots on training classes
    metagan benchmark --budget small --out DIR             # quality: every method and metric, one report
    metagan perf throughput|adapt|memory [--quick]         # speed and memory, one JSON line per measurement
    metagan features train --out features.safetensors      # the evaluation's feature network
    metagan serve [--checkpoint RUN] [--port 7860]         # a web page: upload K images, see samples
    metagan --version                                      # metagan X.Y.Z

Every command checks its arguments before it starts: a mistake ends with one `error: ...` line on stderr and exit
code 2. Outputs never replace files silently: an existing output file, or a non-empty output folder, needs
--overwrite, and a command never writes over its own input.

build_parser and main live here; each command's parser and handler sit together in a module by concern:
train.py (train, export, presets), generate.py (adapt, demo, features, serve, reply, recommend), measure.py
(evaluate, rank) and bench.py (benchmark, perf); common.py holds what they share.
"""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import MetaganError
from .bench import _add_benchmark, _add_perf
from .common import UsageError, _Parser
from .generate import _add_adapt, _add_demo, _add_features, _add_recommend, _add_reply, _add_serve
from .measure import _add_evaluate, _add_rank
from .train import _add_export, _add_presets, _add_train

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="metagan", description="Few-shot generation with meta-learned GANs.")
    p.add_argument("--version", action="version", version=f"metagan {__version__}",
                   help="print the version (metagan X.Y.Z) and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_adapt(sub)
    _add_demo(sub)
    _add_features(sub)
    _add_evaluate(sub)
    _add_rank(sub)
    _add_benchmark(sub)
    _add_perf(sub)
    _add_serve(sub)
    _add_recommend(sub)
    _add_reply(sub)
    _add_export(sub)
    _add_presets(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe (`| head`) surfaces here, not at interpreter exit
        return code
    except (UsageError, MetaganError) as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except BrokenPipeError:  # the reader went away (`metagan ... | head`): stop quietly, as a C tool would
        _detach_stdout()
        return 141  # 128 + SIGPIPE, what the shell reports for a tool killed by the closed pipe
    except KeyboardInterrupt as e:
        print(f"interrupted; {str(e) or 'the last checkpoint is intact'}", file=sys.stderr)
        return 130


def _detach_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot raise BrokenPipeError again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured by a test)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
