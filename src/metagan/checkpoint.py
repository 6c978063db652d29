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

The ratings and dialogue domains store theirs with `save_domain` and `load_domain`: meta-parameters, and in a run's
last checkpoint the optimizer and RNG state (tensors meta.*, opt.*, rng), under their own format names. A shipped
model may be of such a format (pretrained:dialogue-gan-fomaml, written by `export_domain`): `load_domain` resolves
`pretrained:` names, `load` and `config_of` refuse it naming its command, `pretrained_names(fmt)` lists one format.

Loading reads tensors and JSON only: it never runs code from the file. Saving writes a temporary file
in the same folder, fsyncs it and renames it over the old one, so a crash leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import Config, config_from_json
from .errors import CheckpointError, MetaganError
from .functional import flatten, unflatten
from .system import build_system, init_meta

FORMAT = "metagan-checkpoint-1"
FILENAME = "checkpoint.safetensors"
TMP_MARK = ".tmp-"  # <file>.tmp-<pid>: a write in progress, or one that was killed
PRETRAINED_PREFIX = "pretrained:"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


# the commands that use checkpoints of the other domains' formats (DomainFormat.name): named in errors
DOMAIN_COMMANDS = {"metagan-dialogue-1": "metagan reply", "metagan-ratings-1": "metagan recommend"}


def pretrained_names(fmt: str | None = None) -> list[str]:
    """The shipped models' names (`pretrained:<name>`); with `fmt`, only those whose file has that format (FORMAT:
    the image and series models; a DomainFormat's name: that domain's)."""
    names = sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))
    return names if fmt is None else [n for n in names if format_of(PRETRAINED_PREFIX + n) == fmt]


def domain_of(fmt: str) -> str | None:
    """ratings | dialogue for a format of DOMAIN_COMMANDS ("metagan-<domain>-<version>"), else None."""
    return fmt.split("-")[1] if fmt in DOMAIN_COMMANDS else None


def _from_header(path: str | os.PathLike, read):
    """read(file, metadata) on a checkpoint's header, without its tensors; an unreadable file -> CheckpointError."""
    p = resolve(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            return read(p, f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p} is not a readable safetensors checkpoint ({' '.join(str(e).split())[:200]}): "
                              "use another checkpoint") from None


def format_of(path: str | os.PathLike) -> str:
    """The format a checkpoint's header names (FORMAT, or a DomainFormat's name), read without its tensors."""
    return _from_header(path, lambda p, md: str(md.get("format")))


def config_of(path: str | os.PathLike) -> Config:
    """A checkpoint's config, read from its header only (no tensors, no checks of them)."""
    return _from_header(path, lambda p, md: _read_metadata(p, md)[0])


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
    """Write `ck` to `path` (a run folder or a file) atomically. Raises CheckpointError (the previous file intact)
    when the disk refuses the write (full, read-only, gone)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    tensors = {f"meta.{k}": v for k, v in flatten(ck.meta).items()}
    tensors.update({f"ema.{k}": v for k, v in flatten(ck.ema).items()})
    extra: dict[str, dict] = {}
    groups: list = []
    if ck.optimizer is not None:
        opt, extra, groups = optimizer_parts(ck.optimizer)
        tensors.update(opt)
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
    remove_stale_tmp(path.parent)
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def write_atomic(path: Path, write) -> None:
    """`write(tmp)` writes a temporary file beside `path`, which is fsynced and renamed over `path`: a crash, a
    kill or Ctrl-C at any point leaves the old `path` whole (a kill may leave the temporary file, which
    `remove_stale_tmp` removes at the next write). Raises CheckpointError where the disk refuses the write."""
    tmp = path.with_name(path.name + f"{TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise CheckpointError(f"could not write {path} ({e.strerror or e}); the previous {path.name} is intact: "
                              "free disk space (or fix the folder's permissions) and resume") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of writes into `folder` that were killed part-way (their process is gone);
    returns them. Writes of live processes (another rank, another run) are left alone."""
    removed = []
    for p in Path(folder).glob(f"*{TMP_MARK}*"):
        pid = p.name.rsplit(TMP_MARK, 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a write of this process that is not running now: save() is synchronous
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint: its header first (format, config within `config.LIMITS`, and every tensor's name, shape
    and dtype against the model that config builds, built on the meta device), then the tensors. So a damaged or
    hostile file is refused with a CheckpointError before anything is allocated for it."""
    p = resolve(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
            cfg, step, order, groups, extra, has_opt = _read_metadata(p, md)
            _check_tensors(p, cfg, order, {k: f.get_slice(k) for k in f.keys()})
            _check_optimizer(p, cfg, order, groups, extra)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        reason = " ".join(str(e).split())[:200]
        raise CheckpointError(f"{p} is not a readable safetensors checkpoint ({reason}); it may be truncated "
                              "or not a metagan checkpoint: use another checkpoint or retrain") from None
    meta = unflatten({k[5:]: v for k, v in tensors.items() if k.startswith("meta.")})
    ema = unflatten({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer = optimizer_state(tensors, extra, groups) if has_opt else None
    return Checkpoint(cfg, step, meta, ema, optimizer, order, tensors.get("rng.tasks"))


def optimizer_parts(optimizer: dict) -> tuple[dict[str, torch.Tensor], dict[str, dict], list]:
    """A torch optimizer state_dict as a checkpoint stores it: tensors "opt.<i>.<key>" (i: the parameter's index),
    the other per-parameter state {"<i>": {key: value}} (JSON) and the param groups (JSON)."""
    tensors, extra = {}, {}
    for i, state in optimizer["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{i}.{key}"] = value
            else:
                extra.setdefault(str(i), {})[key] = value
    return tensors, extra, optimizer["param_groups"]


def optimizer_state(tensors: dict[str, torch.Tensor], extra: dict[str, dict], groups: list) -> dict:
    """The optimizer state_dict that `optimizer_parts` stored (other tensors in `tensors` are ignored)."""
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, key = k.split(".", 2)
            state.setdefault(int(i), {})[key] = v
    for i, kv in extra.items():
        state.setdefault(int(i), {}).update(kv)
    return {"state": state, "param_groups": groups}


def _read_metadata(p: Path, md: dict) -> tuple:
    if md.get("format") in DOMAIN_COMMANDS:
        raise CheckpointError(f"{p} is a {domain_of(md['format'])} model, not an image model: use it with "
                              f"`{DOMAIN_COMMANDS[md['format']]} --checkpoint ...`")
    if md.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a metagan checkpoint (format {str(md.get('format'))[:40]!r}, "
                              f"expected {FORMAT!r})")
    try:
        cfg = config_from_json(md["config"])
        step = int(md["step"])
        order = json.loads(md["param_order"])
        groups = json.loads(md["opt_groups"])
        extra = json.loads(md["opt_extra"])
        has_opt = json.loads(md.get("has_optimizer", "true"))
    except (KeyError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{p} has damaged metadata ({type(e).__name__}: {' '.join(str(e).split())[:120]}): "
                              "use another checkpoint") from None
    except MetaganError as e:
        raise CheckpointError(f"{p} holds a config this version refuses: {e}") from None
    if step < 0 or not isinstance(has_opt, bool) or not isinstance(order, list):
        raise CheckpointError(f"{p} has damaged metadata (step {step}, has_optimizer {has_opt!r:.20}, "
                              f"param_order {type(order).__name__}): use another checkpoint")
    return cfg, step, order, groups, extra, has_opt


def expected_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """`group.name` -> shape of every meta-parameter of the model `cfg` builds, in the optimizer's order; built on
    the meta device, so it allocates nothing whatever the config's sizes."""
    with torch.device("meta"):
        meta = init_meta(build_system(cfg), 0)
    return {k: tuple(v.shape) for k, v in flatten(meta).items()}


_FLOATS = {"F16", "BF16", "F32", "F64"}
_OPT_STATE = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"}  # shaped like their parameter
_RNG = ((5056,), "U8")  # a CPU torch.Generator's state


def _check_tensors(p: Path, cfg: Config, order: list, slices: dict) -> None:
    """Every stored tensor is one the model of `cfg` has, with its shape: else CheckpointError."""
    want = expected_shapes(cfg)
    if order != list(want):
        raise CheckpointError(f"{p} does not match its own config: its parameter order {str(order)[:80]} is not the "
                              f"model's ({len(want)} parameters): use another checkpoint")
    for k, s in slices.items():
        group, _, name = k.partition(".")
        shape, dtype = tuple(s.get_shape()), s.get_dtype()
        expect = None
        if group == "meta" or (group == "ema" and name.startswith("g.")):
            expect = (want.get(name), _FLOATS)
        elif group == "opt":
            i, _, key = name.partition(".")
            if i.isdigit() and int(i) < len(order) and key in _OPT_STATE | {"step"}:
                expect = ((), _FLOATS) if key == "step" else (want[order[int(i)]], _FLOATS)
        elif k == "rng.tasks":
            expect = (_RNG[0], {_RNG[1]})
        if expect is None or expect[0] is None:
            raise CheckpointError(f"{p} holds a tensor {k[:80]!r} that its config's model does not have: it is "
                                  "damaged or was edited; use another checkpoint")
        if shape != expect[0] or dtype not in expect[1]:
            raise CheckpointError(f"{p}: tensor {k} is {dtype} {list(shape)[:8]}, but its config's model needs "
                                  f"{list(expect[0])} ({'/'.join(sorted(expect[1]))}): use another checkpoint")
    missing = [k for k in want if f"meta.{k}" not in slices]
    ema = [k for k in want if k.startswith("g.") and f"ema.{k}" not in slices]
    if missing or (any(k.startswith("ema.") for k in slices) and ema):
        raise CheckpointError(f"{p} lacks tensors of its model: {(missing or ema)[:3]}: use another checkpoint")


def _check_optimizer(p: Path, cfg: Config, order: list, groups, extra) -> None:
    """The optimizer's param groups index the parameters in order, and its non-tensor state is per parameter."""
    flat = [i for g in groups for i in g.get("params", ())] if isinstance(groups, list) and all(
        isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups) else None
    ok_groups = groups == [] or flat == list(range(len(order)))
    ok_extra = isinstance(extra, dict) and all(
        i.isdigit() and int(i) < len(order) and isinstance(v, dict) for i, v in extra.items())
    if not (ok_groups and ok_extra):
        raise CheckpointError(f"{p} has damaged optimizer metadata: use another checkpoint, or `metagan export` "
                              "it and start a new run from it with train.init_from")


def export(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a shippable copy of a checkpoint: meta-parameters, EMA, step and config (data.root and a
    train.init_from that is a local path cleared: they name files on the machine that trained it);
    no optimizer or RNG state, so it adapts and samples but cannot resume training.

    Raises OutputError, before reading anything, when `dst` is a folder, exists and `overwrite` is False, or is
    `src`'s own file (refused even with `overwrite`: the run would lose what it needs to resume)."""
    source, dst = resolve(src), Path(dst)
    _check_export_target(source, dst, overwrite)
    ck = load(source)
    cfg = replace(ck.config, data=replace(ck.config.data, root=None), train=_shippable_train(ck.config.train))
    dst.parent.mkdir(parents=True, exist_ok=True)
    return save(dst, Checkpoint(cfg, ck.step, ck.meta, ck.ema, None, ck.param_order, None))


def _shippable_train(train):
    """The train section with a train.init_from that is a local path cleared (a `pretrained:` name is kept)."""
    init = train.init_from
    return replace(train, init_from=init if init and init.startswith(PRETRAINED_PREFIX) else None)


def _check_export_target(source: Path, dst: Path, overwrite: bool) -> None:
    """OutputError unless `dst` is a file export may write (see `export`)."""
    from .errors import OutputError

    if dst.is_dir():
        raise OutputError(f"{dst} is a folder: export writes one file; name it, e.g. {dst / 'model.safetensors'}")
    if dst.exists() and os.path.samefile(dst, source):
        raise OutputError(f"{dst} is the checkpoint being exported: the copy has no optimizer or RNG state, so "
                          "writing it there would leave a run that cannot resume; write the copy to another file")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} exists; pass --overwrite (overwrite=True) to replace it, or write elsewhere")
    parent = next(p for p in (dst.absolute().parent, *dst.absolute().parents) if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {dst}: {parent} is not a writable folder")


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


BEST = "best.safetensors"  # a ratings or dialogue run's validation-best meta-parameters, beside FILENAME


@dataclass(frozen=True)
class DomainFormat:
    """How a domain beside images (ratings, dialogue) stores its checkpoints."""

    name: str                       # the metadata's format, e.g. metagan-ratings-1
    domain: str                     # ratings | dialogue: names the runs in errors
    presets: str                    # the presets that train them, e.g. movielens-gan-...: in errors
    config_from_json: Callable[[str], Any]


@dataclass
class DomainCheckpoint:
    """A ratings or dialogue checkpoint: config, step and meta-parameters; a run's last checkpoint also holds the
    optimizer and the task stream's RNG state (resuming from it is exact). `metadata`: the domain's own entries,
    strings (ratings: item_ids, scale; the run's best validation score)."""

    config: Any
    step: int
    meta: dict
    optimizer: dict | None = None
    rng_state: torch.Tensor | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def save_domain(path: str | os.PathLike, fmt: DomainFormat, ck: DomainCheckpoint) -> Path:
    """Write `ck` to the file `path` atomically (`write_atomic`). Tensors: meta.<group>.<name>, opt.<i>.<key>, rng;
    metadata: format, step, config (JSON), opt_groups and opt_extra (with an optimizer) and ck.metadata."""
    tensors = {f"meta.{k}": v for k, v in flatten(ck.meta).items()}
    metadata = {**ck.metadata, "format": fmt.name, "step": str(ck.step), "config": ck.config.to_json()}
    if ck.optimizer is not None:
        opt, extra, groups = optimizer_parts(ck.optimizer)
        tensors.update(opt)
        metadata.update(opt_groups=json.dumps(groups), opt_extra=json.dumps(extra))
    if ck.rng_state is not None:
        tensors["rng"] = ck.rng_state
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return Path(path)


def load_domain(path: str | os.PathLike, fmt: DomainFormat, last: bool = False) -> DomainCheckpoint:
    """Read a checkpoint of format `fmt` (tensors and JSON only); a run folder gives its BEST file (with `last`, or
    where it has none, its FILENAME); `pretrained:<name>` a shipped file (`resolve`). Raises CheckpointError naming
    the presets that make such runs."""
    p = resolve(path) if str(path).startswith(PRETRAINED_PREFIX) else Path(path)
    if p.is_dir():
        p = p / BEST if (p / BEST).is_file() and not last else p / FILENAME
    if not p.is_file():
        raise CheckpointError(f"no {fmt.domain} checkpoint at {path}: pass a run folder of `metagan train --preset "
                              f"{fmt.presets}` or its .safetensors file")
    try:
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
            if md.get("format") != fmt.name:
                raise CheckpointError(f"{p} is not a {fmt.domain} checkpoint (format {md.get('format')!r:.40}): "
                                      f"use a model trained with --preset {fmt.presets}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        cfg, step = fmt.config_from_json(md["config"]), int(md["step"])
        optimizer = (optimizer_state(tensors, json.loads(md.get("opt_extra", "{}")), json.loads(md["opt_groups"]))
                     if "opt_groups" in md else None)
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{p} is not a readable {fmt.domain} checkpoint ({str(e)[:120]}): retrain it") from None
    meta = unflatten({k[5:]: v for k, v in tensors.items() if k.startswith("meta.")})
    own = {k: v for k, v in md.items() if k not in ("format", "step", "config", "opt_groups", "opt_extra")}
    return DomainCheckpoint(cfg, step, meta, optimizer, tensors.get("rng"), own)


def export_domain(src: str | os.PathLike, dst: str | os.PathLike, fmt: DomainFormat,
                  overwrite: bool = False) -> Path:
    """`export` for a ratings or dialogue checkpoint: the validation-best meta-parameters of run folder `src` (or
    the file `src`), its step, config (a train.init_from that is a local path cleared; data.source kept: the
    shipped dialogue model's is the installed corpus) and the domain's own metadata; no optimizer or RNG state.
    The same refusals as `export`."""
    source = resolve(src) if str(src).startswith(PRETRAINED_PREFIX) else Path(src)
    if source.is_dir():
        source = source / BEST if (source / BEST).is_file() else source / FILENAME
    dst = Path(dst)
    if source.is_file():
        _check_export_target(source, dst, overwrite)
    ck = load_domain(source, fmt)  # CheckpointError for a missing or foreign file
    cfg = replace(ck.config, train=_shippable_train(ck.config.train))
    dst.parent.mkdir(parents=True, exist_ok=True)
    return save_domain(dst, fmt, DomainCheckpoint(cfg, ck.step, ck.meta, metadata=ck.metadata))
