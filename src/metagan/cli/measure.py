"""Commands that measure one model or a few: evaluate (an Omniglot model on held-out classes) and rank (checkpoints,
e.g. a run's snapshots, on training classes)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from .common import _CHECKPOINT, _DATA_DIR, _SHOTS, _STEPS, _out_file, _ratio


def _require_omniglot(model, command: str) -> None:
    """evaluate (and rank, for image models) measure in the feature network's domain: Omniglot, 1 channel, 28 or
    32 pixels."""
    from ..data import is_series

    d = model.cfg.data
    if is_series(d):
        raise ConfigError(f"{command} measures Omniglot models; this checkpoint is a series model ({d.source} "
                          f"{d.dataset or d.root}): measure it with `metagan benchmark --suite pigcvp` (PigCVP) or "
                          "`metagan rank --by fd`")
    if d.source != "omniglot" or d.image_size not in (28, 32) or d.channels != 1:
        raise ConfigError(f"{command} measures Omniglot models (1 channel, 28 or 32 pixels); this checkpoint was "
                          f"trained on {d.source} at {d.image_size}x{d.image_size}")


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


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from ..adapt import load
    from ..baselines import metagan_generator
    from ..config import DataConfig
    from ..data import build_datasets
    from ..evaluate import PROTOCOLS, chosen_classes, evaluate, split_dataset
    from ..lowdata import choose_share, lowdata_accuracy
    from ..metrics.features import load_feature_net

    from ..checkpoint import resolve

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

    from ..adapt import check_select, load
    from ..baselines import metagan_generator
    from ..data import build_datasets, is_series
    from ..evaluate import PROTOCOLS, validation_metrics
    from ..metrics.features import load_feature_net

    from ..checkpoint import resolve

    def rank_features(train_ds):  # the series domain's code loads only for a series model
        from ..series_suite.networks import training_features

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
