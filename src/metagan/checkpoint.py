"""Checkpoints: everything needed to continue exactly, in one safetensors file, written atomically.

File layout (`checkpoint.safetensors`):
    tensors   meta.<group>.<name>   meta-parameters (groups g, d; lr_g, lr_d for Meta-SGD)
              ema.g.<name>          EMA copy of the generator meta-parameters
              opt.<i>.<key>         optimizer state of parameter i (in `param_order`)
              rng.tasks             state of the task/noise torch.Generator
    metadata  format, step, config (JSON), param_order, opt_groups, opt_extra (JSON)

Shipped models (`pretrained:<name>`, files in metagan/pretrained/, docs/models.md) are checkpoints written by
`export`: meta-parameters, EMA and config only (no optimizer or RNG state, no data path), so they adapt and
sample but do not resume.

Configs written by metagan 0.1.0 load where the options removed since did nothing there (`config.migrate`);
others are refused with a message naming that release.

Loading reads tensors and JSON only: it never runs code from the file. Saving writes a temporary file
in the same folder, fsyncs it and renames it over the old one, so a crash leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import Config, config_from_json
from .errors import CheckpointError, MetaganError
from .functional import flatten, unflatten

FORMAT = "metagan-checkpoint-1"
FILENAME = "checkpoint.safetensors"
PRETRAINED_PREFIX = "pretrained:"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def pretrained_names() -> list[str]:
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))


@dataclass
class Checkpoint:
    config: Config
    step: int
    meta: dict  # nested {"g": {...}, "d": {...}, ...}
    ema: dict  # {"g": {...}} or {}
    optimizer: dict | None  # torch optimizer state_dict, params as indices into param_order
    param_order: list[str]
    rng_state: torch.Tensor | None


def resolve(path: str | os.PathLike) -> Path:
    """A run folder, a checkpoint file or `pretrained:<name>` -> the checkpoint file."""
    if str(path).startswith(PRETRAINED_PREFIX):
        name = str(path)[len(PRETRAINED_PREFIX):]
        p = PRETRAINED_DIR / f"{name}.safetensors"
        if not name or "/" in name or not p.is_file():
            raise CheckpointError(f"no shipped model {name!r}; shipped models are: "
                                  f"{', '.join(PRETRAINED_PREFIX + n for n in pretrained_names()) or 'none'}")
        return p
    p = Path(path)
    if p.is_dir():
        p = p / FILENAME
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {path}: pass a run folder (e.g. runs/00000-digits-demo) "
                              f"holding {FILENAME}, or the path of a .safetensors checkpoint")
    return p


def save(path: str | os.PathLike, ck: Checkpoint) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    tensors = {f"meta.{k}": v for k, v in flatten(ck.meta).items()}
    tensors.update({f"ema.{k}": v for k, v in flatten(ck.ema).items()})
    extra: dict[str, dict] = {}
    groups = []
    if ck.optimizer is not None:
        for i, state in ck.optimizer["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"opt.{i}.{key}"] = value
                else:
                    extra.setdefault(str(i), {})[key] = value
        groups = ck.optimizer["param_groups"]
    if ck.rng_state is not None:
        tensors["rng.tasks"] = ck.rng_state
    metadata = {
        "format": FORMAT,
        "step": str(ck.step),
        "config": ck.config.to_json(),
        "param_order": json.dumps(ck.param_order),
        "opt_groups": json.dumps(groups),
        "opt_extra": json.dumps(extra),
        "has_optimizer": json.dumps(ck.optimizer is not None),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    p = resolve(path)
    try:
        tensors = load_file(str(p))
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p} is not a readable safetensors checkpoint ({e}); it may be truncated "
                              "or not a metagan checkpoint: use another checkpoint or retrain") from None
    if md.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a metagan checkpoint (format {md.get('format')!r}, "
                              f"expected {FORMAT!r})")
    try:
        cfg = config_from_json(md["config"])
        step = int(md["step"])
        order = json.loads(md["param_order"])
        groups = json.loads(md["opt_groups"])
        extra = json.loads(md["opt_extra"])
        has_opt = json.loads(md.get("has_optimizer", "true"))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{p} has damaged metadata ({e}): use another checkpoint") from None
    except MetaganError as e:
        raise CheckpointError(f"{p} holds a config this version cannot read: {e}") from None
    meta = unflatten({k[5:]: v for k, v in tensors.items() if k.startswith("meta.")})
    ema = unflatten({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer = None
    if has_opt:
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, i, key = k.split(".", 2)
                state.setdefault(int(i), {})[key] = v
        for i, kv in extra.items():
            state.setdefault(int(i), {}).update(kv)
        optimizer = {"state": state, "param_groups": groups}
    return Checkpoint(cfg, step, meta, ema, optimizer, order, tensors.get("rng.tasks"))


def export(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write a shippable copy of a checkpoint: meta-parameters, EMA, step and config (data.root and a
    train.init_from that is a local path cleared: they name files on the machine that trained it);
    no optimizer or RNG state, so it adapts and samples but cannot resume training."""
    ck = load(src)
    init = ck.config.train.init_from
    cfg = replace(ck.config, data=replace(ck.config.data, root=None),
                  train=replace(ck.config.train, init_from=init if init and init.startswith(PRETRAINED_PREFIX)
                                else None))
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return save(dst, Checkpoint(cfg, ck.step, ck.meta, ck.ema, None, ck.param_order, None))


def check_compatible(meta: dict, expected: dict, source: str) -> None:
    """Raise if a checkpoint's meta-parameters `meta` do not match `expected` (both nested, tensors) by
    name/shape."""
    got = {k: tuple(v.shape) for k, v in flatten(meta).items()}
    want = {k: tuple(v.shape) for k, v in flatten(expected).items()}
    if got == want:
        return
    missing = sorted(set(want) - set(got))[:3]
    unexpected = sorted(set(got) - set(want))[:3]
    shapes = [f"{k}: {got[k]} vs {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]][:3]
    raise CheckpointError(
        f"{source} belongs to another model: missing {missing}, unexpected {unexpected}, "
        f"shape mismatches {shapes}. Use the config the checkpoint was trained with (do not override "
        "model.*, data.image_size, data.channels or meta.learner when resuming or adapting).")
