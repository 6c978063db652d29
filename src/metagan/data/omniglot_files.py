"""Omniglot files: find them, verify them, download them, decode them to full-resolution arrays.

Two forms are accepted for each of the two sets (``images_background``: 964 characters of 30
alphabets; ``images_evaluation``: 659 characters of 20 alphabets), looked for in ``<dir>/omniglot/``
and then directly in ``<dir>``:

- npz (preferred, fast): ``images_background.npz`` with ``images`` bool (964, 20, 105, 105), ink
  False; verified by the sha256 of the file.
- the original distribution: ``images_background.zip`` (verified by torchvision's md5) or its
  unzipped folder ``images_background/<Alphabet>/characterNN/XXXX_YY.png``. Decoded PNGs are also
  verified by a content hash, the sha256 of the decoded bool array, equal to that of the npz.

Both forms decode to the same ``OmniglotSet``. Decoding the zips takes a few seconds, so nothing
is cached. When neither form is present and downloading is on, the zips are fetched from
``$METAGAN_OMNIGLOT_URL`` (default: the brendenlake/omniglot repository).

Example:
    >>> sets = load_sets(data_dir(None), download=False)          # doctest: +SKIP
    >>> sets["images_background"].images.shape                       # doctest: +SKIP
    (964, 20, 105, 105)
"""
from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import http.client
import io
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

log = logging.getLogger(__name__)

SETS = ("images_background", "images_evaluation")
DRAWERS, SIDE = 20, 105
DEFAULT_URL = "https://github.com/brendenlake/omniglot/raw/master/python"
URL_ENV, DIR_ENV = "METAGAN_OMNIGLOT_URL", "METAGAN_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 60.0

# Expected checksums. Hard-coded on purpose: a SHA256SUMS file next to the data could be stale.
NPZ_SHA256 = {
    "images_background": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "images_evaluation": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
}
# The md5s torchvision records for the original zips (torchvision/datasets/omniglot.py, zips_md5).
ZIP_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
# sha256 of the decoded (n, 20, 105, 105) bool array (ink False; see content_sha256), computed from
# the npz files, which hold exactly the pixels of the zips.
CONTENT_SHA256 = {
    "images_background": "9121d28f81874a5939b6e932f85c56f0c63db652bfdbd0fb391f6d5eeec01f0f",
    "images_evaluation": "ebe4b0f06a588946ccb62c6e8d9e0eede457e4242f1bfca1309a1f946313b72e",
}

_PNG = re.compile(r"(?:^|/)(images_background|images_evaluation)/([^/]+)/character(\d+)/(\d{4})_(\d{2})\.png$")


@dataclass(frozen=True)
class Alphabet:
    name: str  # folder name, e.g. "Gurmukhi"
    first_id: int  # global id of character01
    last_id: int
    set: str  # "background" or "evaluation"


@dataclass
class OmniglotSet:
    """One decoded set: ``images[i]`` is character ``char_ids[i]`` drawn by 20 people.

    ``images``: bool ``(n, 20, 105, 105)``, True = paper, False = ink (as in the npz files), stored
    as canonical 0/1 bytes.
    """

    name: str
    char_ids: np.ndarray  # (n,) int64, ascending
    images: np.ndarray
    source: Path


@functools.lru_cache(maxsize=1)
def read_alphabets() -> tuple[Alphabet, ...]:
    """The 50 alphabets and their character-id ranges (shipped in ``splits/omniglot_alphabets.csv``)."""
    text = resources.files(__package__).joinpath("splits/omniglot_alphabets.csv").read_text()
    return tuple(Alphabet(r["alphabet_folder"], int(r["first_char_id"]), int(r["last_char_id"]), r["set"])
                 for r in csv.DictReader(io.StringIO(text)))


def id_range(name: str) -> tuple[int, int]:
    """First and last global character id of a set, e.g. (1, 964) for images_background."""
    ids = [(a.first_id, a.last_id) for a in read_alphabets() if f"images_{a.set}" == name]
    return min(i for i, _ in ids), max(j for _, j in ids)


def data_dir(root: str | os.PathLike | None) -> Path:
    """``root`` if given, else ``$METAGAN_DATA_DIR``, else ``~/.cache/metagan``."""
    chosen = root or os.environ.get(DIR_ENV) or Path.home() / ".cache" / "metagan"
    return Path(chosen).expanduser()


def content_sha256(images: np.ndarray) -> str:
    """sha256 of a bool ``(n, 20, 105, 105)`` array as 0/1 bytes in C order (characters by ascending id).

    The 0/1 conversion matters: the published npz files store True as the byte 255 (``_load_npz``
    normalises that), so hashing raw bytes would not match freshly decoded PNGs.
    """
    h = hashlib.sha256()
    for drawings in images:  # one character at a time: no full-size copy
        h.update(np.ascontiguousarray(drawings, dtype=bool).astype(np.uint8).tobytes())
    return h.hexdigest()


def load_sets(directory: Path, download: bool) -> dict[str, OmniglotSet]:
    """Find (or download), verify and decode both sets. Raises DataError saying what to put where."""
    found = {name: _find(directory, name) for name in SETS}
    missing = [name for name, where in found.items() if where is None]
    if missing and not download:
        raise DataError(_missing_message(directory, missing, "Downloading is off (data.download=false)."))
    for name in missing:
        url = f"{os.environ.get(URL_ENV, DEFAULT_URL).rstrip('/')}/{name}.zip"
        dest = directory / "omniglot" / f"{name}.zip"
        try:
            _download(url, dest, ZIP_MD5[name])
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(_missing_message(directory, missing, f"Downloading {url} failed: {reason}.")) from e
        found[name] = ("zip", dest)
    return {name: _load(name, *found[name]) for name in SETS}


def _find(directory: Path, name: str) -> tuple[str, Path] | None:
    """The first present form of ``name``: npz, then zip, then unzipped folder; omniglot/ before dir."""
    folders = [directory / "omniglot", directory]
    for kind, filename in (("npz", f"{name}.npz"), ("zip", f"{name}.zip"), ("folder", name)):
        for folder in folders:
            path = folder / filename
            if path.is_dir() if kind == "folder" else path.is_file():
                return kind, path
    return None


def _load(name: str, kind: str, path: Path) -> OmniglotSet:
    if kind == "npz":
        _verify_file(path, "sha256", NPZ_SHA256[name], "re-copy it (e.g. from ../shared/data/omniglot)")
        return _load_npz(name, path)
    if kind == "zip":
        _verify_file(path, "md5", ZIP_MD5[name], "metagan downloads it again when data.download is true")
        with zipfile.ZipFile(path) as z:
            members = ((n, lambda n=n: z.read(n)) for n in z.namelist())
            result = _decode_pngs(name, path, members)
    else:
        members = ((p.relative_to(path.parent).as_posix(), p.read_bytes) for p in sorted(path.rglob("*.png")))
        result = _decode_pngs(name, path, members)
    actual = content_sha256(result.images)
    if actual != CONTENT_SHA256[name]:
        first, last = id_range(name)
        raise DataError(
            f"{path}: the decoded images are not the published Omniglot {name} (content sha256 {actual}, "
            f"expected {CONTENT_SHA256[name]}; found {len(result.char_ids)} characters, expected "
            f"{last - first + 1}). The data is incomplete or modified: delete {path} and download "
            f"{DEFAULT_URL}/{name}.zip again (or use the npz form).")
    return result


def _load_npz(name: str, path: Path) -> OmniglotSet:
    try:
        with np.load(path) as f:
            images = f["images"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path} ({e}): delete it and re-copy it") from e
    first, last = id_range(name)
    if images.dtype != bool or images.shape != (last - first + 1, DRAWERS, SIDE, SIDE):
        raise DataError(f"{path}: images is {images.dtype} {images.shape}, expected bool "
                        f"{(last - first + 1, DRAWERS, SIDE, SIDE)}; delete it and re-copy it")
    # The files store True as the byte 255; numpy and torch mostly treat any non-zero byte as True,
    # but byte-level operations (views, hashing, some kernels) do not. Make them canonical 0/1.
    np.not_equal(images.view(np.uint8), 0, out=images)
    return OmniglotSet(name, np.arange(first, last + 1, dtype=np.int64), images, path)


def _decode_pngs(name: str, source: Path, members: Iterator[tuple[str, Callable[[], bytes]]]) -> OmniglotSet:
    """PNG members ``images_x/<Alphabet>/characterNN/XXXX_YY.png`` -> OmniglotSet (ink False)."""
    first, last = id_range(name)
    alphabets = {a.name: a for a in read_alphabets()}
    images = np.ones((last - first + 1, DRAWERS, SIDE, SIDE), dtype=bool)
    seen = np.zeros((last - first + 1, DRAWERS), dtype=bool)
    for member, read in members:
        m = _PNG.search(member)
        if m is None:
            continue  # folders, __MACOSX/, .DS_Store and the like
        set_name, alphabet, nn, cid, drawer = m[1], m[2], int(m[3]), int(m[4]), int(m[5])
        a = alphabets.get(alphabet)
        if set_name != name or a is None or f"images_{a.set}" != name or cid != a.first_id + nn - 1 \
                or not 1 <= drawer <= DRAWERS:
            raise DataError(f"{source}: unexpected member {member} (alphabet, character number, id and "
                            f"drawer must match the original layout); delete {source} and get the original")
        images[cid - first, drawer - 1] = _decode_png(read(), f"{source}: {member}")
        seen[cid - first, drawer - 1] = True
    present = seen.any(axis=1)
    if not present.any():
        raise DataError(f"{source}: no Omniglot PNGs found (expected {name}/<Alphabet>/characterNN/"
                        "XXXX_YY.png); delete it and get the original")
    partial = np.flatnonzero(present & ~seen.all(axis=1))
    if partial.size:
        cid = first + int(partial[0])
        raise DataError(f"{source}: character {cid:04d} has only {int(seen[partial[0]].sum())} of "
                        f"{DRAWERS} drawings; the data is incomplete: delete it and get the original")
    ids = np.flatnonzero(present)
    images = images if present.all() else images[ids]
    return OmniglotSet(name, (ids + first).astype(np.int64), images, source)


def _decode_png(data: bytes, what: str) -> np.ndarray:
    """PNG bytes -> bool (105, 105), True = paper (light), False = ink (dark)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            grey = np.asarray(img.convert("L"))
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for bad data
        raise DataError(f"{what}: not a readable PNG ({e}); the file is corrupt: delete it and get "
                        "the original") from e
    if grey.shape != (SIDE, SIDE):
        raise DataError(f"{what}: image is {grey.shape[1]}x{grey.shape[0]}, Omniglot drawings are "
                        f"{SIDE}x{SIDE}; delete it and get the original")
    return grey >= 128


def _verify_file(path: Path, algo: str, expected: str, refetch: str) -> None:
    actual = _file_hash(path, algo)
    if actual != expected:
        raise DataError(f"{path}: {algo} is {actual}, expected {expected}; the file is corrupt, truncated "
                        f"or not the original. Delete it and {refetch}.")


def _file_hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to a temporary file next to ``dest``; rename it to ``dest`` only if the md5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    log.info("downloading %s to %s", url, dest)
    try:
        h = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != md5:
            raise DataError(f"downloaded {url}: md5 is {h.hexdigest()}, expected {md5}; the server did not send "
                            f"the original file (a proxy or error page?). Nothing was kept. Try again, download "
                            f"it yourself and put it at {dest}, or use the npz form.")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _missing_message(directory: Path, missing: list[str], reason: str) -> str:
    target = directory / "omniglot"
    base = os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/")
    npz = ", ".join(str(target / f"{n}.npz") for n in missing)
    zips = ", ".join(str(target / f"{n}.zip") for n in missing)
    urls = ", ".join(f"{base}/{n}.zip" for n in missing)
    return (f"Omniglot data not found: no {' or '.join(missing)} in {target} or {directory}. {reason}\n"
            f"Put one of these forms in place:\n"
            f"  - npz form: {npz} (in the metagan project: ../shared/data/omniglot);\n"
            f"  - original zips: {zips}, from {urls} (unzipped folders {target}/images_*/ work too).\n"
            f"Or point metagan at a folder that holds them: data.root=PATH (--data-dir PATH) or the "
            f"{DIR_ENV} environment variable. To download automatically, go online with data.download=true "
            f"({URL_ENV} sets a mirror).")
