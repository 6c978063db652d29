"""Commands that make and list models: train (image runs, and the ratings and dialogue domains' runs), export (a small
shippable copy of a run) and presets (the named configurations)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MetaganError
from .common import _out_dir


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


def _train(args: argparse.Namespace) -> int:
    from .. import checkpoint as ckpt
    from ..config import apply_overrides, get_preset
    from ..train import train

    from ..ratings.config import PRESETS as RATINGS_PRESETS

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
        from ..ratings.config import LOADER
        from ..ratings.train import train
    else:
        from ..dialogue.config import LOADER
        from ..dialogue.train import train

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


def _add_export(sub) -> None:
    x = sub.add_parser("export", help="write a small shippable copy of a run (no optimizer state)")
    x.add_argument("--checkpoint", required=True, help="run folder or checkpoint file to export (required)")
    x.add_argument("--out", required=True,
                   help="the .safetensors file to write; never the checkpoint being exported (required)")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refuse)")
    x.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from .. import checkpoint as ckpt

    domain = _run_domain(args.checkpoint) or (  # else a ratings or dialogue file outside its run folder
        None if Path(args.checkpoint).is_dir() else ckpt.domain_of(ckpt.format_of(args.checkpoint)))
    if domain in ("ratings", "dialogue"):  # the run's validation-best meta-parameters and config
        from importlib import import_module

        fmt = import_module(f"..{domain}.train", __package__).FORMAT
        out = ckpt.export_domain(args.checkpoint, args.out, fmt, overwrite=args.overwrite)
    else:
        out = ckpt.export(args.checkpoint, args.out, overwrite=args.overwrite)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB); load it with --checkpoint {out}")
    return 0


def _add_presets(sub) -> None:
    s = sub.add_parser("presets", help="list the named configurations")
    s.set_defaults(func=_presets)


def _presets(args: argparse.Namespace) -> int:
    from ..config import PRESETS, get_preset
    from ..data import is_series

    for name in sorted(PRESETS):
        c = get_preset(name)
        size = f"length={c.data.length}" if is_series(c.data) else f"size={c.data.image_size}"
        print(f"{name:18s} data={c.data.source} {size} learner={c.meta.learner} "
              f"loss={c.loss.kind} K={c.task.k_shot} inner_steps={c.meta.inner_steps} steps={c.train.steps}")
    from ..ratings.config import PRESETS as RATINGS_PRESETS, get_preset as ratings_preset

    for name in sorted(RATINGS_PRESETS):
        c = ratings_preset(name)
        print(f"{name:18s} data={c.data.source} model={c.model.kind} learner={c.meta.learner} "
              f"inner_steps={c.meta.inner_steps} steps={c.train.steps}")
    from ..dialogue.config import PRESETS as DIALOGUE_PRESETS, get_preset as dialogue_preset

    for name in sorted(DIALOGUE_PRESETS):
        c = dialogue_preset(name)
        print(f"{name:18s} data={c.data.source} learner={c.meta.learner} inner_adv={c.loss.inner_adv} "
              f"K={c.task.k_shot} inner_steps={c.meta.inner_steps} steps={c.train.steps}")
    return 0
