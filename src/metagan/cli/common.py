"""What every command shares: the parser class whose errors are one line, option types that check their bounds
and say why, the checks on output paths (never replace a file silently, never write over an input) and the help
strings several commands use."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ..errors import ConfigError, OutputError

MAX_STEPS = 10_000  # adaptation steps: each runs the inner loop over all K images
MAX_SEED = 2**63 - 1


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
    from ..adapt import check_select

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

_CHECKPOINT = "run folder, checkpoint file or pretrained:NAME (the shipped models, docs/models.md)"
_DATA_DIR = "Omniglot folder (default: the checkpoint's data.root, else $METAGAN_DATA_DIR or the download cache)"


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


def _out_folder(out: Path, overwrite: bool, outputs: re.Pattern, described: str, inputs=()) -> list[Path]:
    """A command's output folder: missing, empty, or (with --overwrite) any folder. Returns the files there
    that `outputs` matches (metagan's own earlier outputs, which the caller removes just before writing); none of
    them may be one of the command's `inputs` (its --support files)."""
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
    old = [p for p in entries if p.is_file() and outputs.fullmatch(p.name)]
    for s in inputs:  # --overwrite must not replace an input
        if any(Path(s).exists() and os.path.samefile(s, p) for p in old):
            raise OutputError(f"--support {s} is one of the files --overwrite would replace in --out {out}; "
                              "move it or write elsewhere")
    return old
