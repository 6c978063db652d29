"""Commands that use a trained model: adapt (K images or series in, samples out), demo (the whole pipeline on the
embedded digits), features (train the evaluation's feature network), serve (the web page), reply (dialogue) and
recommend (ratings)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import ConfigError, OutputError
from .common import _CHECKPOINT, _SEED, _STEPS, _int_in, _out_dir, _out_file, _out_folder, _ratio

MAX_NUM = 1_000_000  # adapt --num: one PNG file per image
GRID_SAMPLES = 256  # adapt's grid.png shows at most this many samples (16 lines of 16)
ADAPT_OUTPUTS = re.compile(r"sample-\d{4,}\.png|grid\.png")  # what adapt --overwrite may replace


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


def _adapt(args: argparse.Namespace) -> int:
    import torch

    from ..adapt import check_sample_memory, check_support_size, load
    from ..adapt_series import adapt_series_command
    from ..data import files_inverted, from_model_space, is_series, save_grid, write_image

    model = load(args.checkpoint)
    if is_series(model.cfg.data):  # series in CSV/.npy, samples out as CSV, .npy and a plot
        return adapt_series_command(args, model, _out_folder)
    out = Path(args.out)
    old = _out_folder(out, args.overwrite, ADAPT_OUTPUTS, "sample-NNNN.png and grid.png", args.support)
    note = check_support_size(len(args.support), model.cfg.task.k_shot)
    check_sample_memory(args.num, args.select, model.system.shape, model.system.problem.z_dim, bytes_per_image=5)
    support = model.read_support(args.support, args.polarity)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    if args.steps is None and model.offered_steps != model.own_steps:
        print(f"note: {args.checkpoint} was trained jointly (no meta-learned adaptation); it is fine-tuned for "
              f"{model.own_steps} steps on the supports, which lowered the samples' quality on Omniglot: pass "
              "--steps 0 to sample from it as trained", file=sys.stderr)
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


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="meta-train on digits, adapt to held-out digits, write a grid and report")
    d.add_argument("--out-dir", default="runs", help="parent folder of the run folder (default runs)")
    d.add_argument("--steps", type=_int_in(1, 10**7, "meta-training steps"), default=None,
                   help="meta-training steps (default: the digits-demo preset's, 1000)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar (default: show one)")
    d.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    _out_dir(args.out_dir, "--out-dir")
    report = run_demo(out_dir=args.out_dir, steps=args.steps, progress=not args.no_progress)
    print(report)
    return 0


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


def _features(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..metrics.features import build

    _out_file(args.out, args.overwrite)
    _out_file(str(Path(args.out).with_suffix(".json")), args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    card = build(args.data_dir, args.out, steps=args.steps, episodes=args.episodes)
    print(json.dumps(card, indent=2))
    return 0


def _add_serve(sub) -> None:
    v = sub.add_parser("serve", help="a web page: upload K images, pick a model, see and download samples")
    v.add_argument("--checkpoint", default=None,
                   help=_CHECKPOINT + ", offered first on the page beside the shipped models (default: "
                                      "pretrained:omniglot-metasgd)")
    v.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves other machines too (default 127.0.0.1: this one only)")
    v.add_argument("--port", type=_int_in(1, 65535, "TCP port"), default=7860, help="port (default 7860)")
    v.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        from ..serve.app import serve
    except ImportError as e:
        raise ConfigError(f"metagan serve needs the serve extra ({e}): pip install -e \".[serve]\"") from None
    serve(args.checkpoint, args.host, args.port)
    return 0


def _add_timed_adaptation(r, verb: str, seed_note: str = "") -> None:
    """--steps, --seed and --repeat of a command that adapts to one task, then `verb`s or times the adaptation."""
    r.add_argument("--steps", type=_STEPS, default=None, help="adaptation steps (default: the model's inner steps)")
    r.add_argument("--seed", type=_SEED, default=0, help=f"seed of the adaptation's noise{seed_note} (default 0)")
    r.add_argument("--repeat", type=_int_in(1, 100_000, "timed repetitions"), default=0,
                   help=f"instead of {verb[:-1] if verb.endswith('e') else verb}ing, time the adaptation N times and "
                        f"print one JSON line (median and 90th percentile ms) (default 0: {verb})")


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
    r.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="sampling temperature of the replies, > 0: lower keeps closer to the topic's most likely "
                        "bytes, less varied (default: the model's model.temperature)")
    _add_timed_adaptation(r, "reply", "; the replies use seed + 1")
    r.set_defaults(func=_reply)


def _timed(args: argparse.Namespace, model, support) -> bool:
    """With --repeat: time the adaptation of `model` (a Replier or Recommender) to `support`, print one JSON
    line and say so (True); otherwise do nothing (False)."""
    if not args.repeat:
        return False
    import json
    print(json.dumps(model.latency(support, reps=args.repeat, steps=args.steps)))
    return True


def _reply(args: argparse.Namespace) -> int:
    from ..dialogue.reply import Replier

    if args.temperature is not None and not args.temperature > 0:
        raise ConfigError(f"--temperature {args.temperature}: give a positive temperature (the model's is "
                          "model.temperature)")
    bot = Replier.load(args.checkpoint)
    support = bot.read_support(args.conversations)
    if not _timed(args, bot, support):
        adapted = bot.adapt(support, args.steps, args.seed)
        for prompt, reply in zip(args.prompt, adapted.reply(args.prompt, seed=args.seed + 1,
                                                                  temperature=args.temperature)):
            print(f"{prompt}\t{reply}")
    return 0


def _add_recommend(sub) -> None:
    r = sub.add_parser("recommend", help="adapt a ratings model to one user's ratings and print top-N items")
    r.add_argument("--checkpoint", required=True,
                   help="run folder or checkpoint of `metagan train --preset movielens-gan-...` (required)")
    r.add_argument("--ratings", required=True, help="CSV of item, rating rows: the user's ratings (required)")
    r.add_argument("--top", type=_int_in(1, 100_000, "items to recommend"), default=10,
                   help="items to print, best first: rank, item id, predicted label (default 10)")
    _add_timed_adaptation(r, "recommend")
    r.set_defaults(func=_recommend)


def _recommend(args: argparse.Namespace) -> int:
    from ..ratings.recommend import Recommender

    rec = Recommender.load(args.checkpoint)
    support = rec.read_ratings(args.ratings)
    if not _timed(args, rec, support):
        for rank, (item, score) in enumerate(rec.top(support, args.top, args.steps, args.seed), 1):
            print(f"{rank}\t{item}\t{score:.4f}")
    return 0
