"""Interaction data: (user, item, rating, timestamp) rows, read from files, never shipped with metagan.

    >>> data = load_interactions("movielens-100k")            # the copy inside the RecBole wheel (extra `rec`)
    >>> data = load_interactions("~/Downloads/ml-100k.zip")    # the GroupLens zip
    >>> data = load_interactions("my_folder/")                 # u.data, *.inter, ratings.csv/.dat, ... inside

Files read: RecBole atomic files (`*.inter`, with `*.item` and `*.user` beside them for side features), GroupLens
MovieLens-100K (`u.data`, `u.item`, `u.user`, in a folder or the zip), MovieLens-1M style `ratings.dat`
(`::`-separated) and any CSV/TSV of user, item, rating[, timestamp] with or without a header row.
MovieLens's licence forbids redistribution: metagan reads the data where the user has it and never copies it.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError

MOVIELENS_100K = "movielens-100k"
RECBOLE_ML100K = ("dataset_example", "ml-100k")
AGE_BINS = (18, 25, 35, 45, 50, 56)  # MovieLens's own age groups
YEAR_BINS = tuple(range(1930, 2000, 10))  # release decades; earlier films share the first bucket


@dataclass
class Interactions:
    """All rows of one data set, users and items re-indexed from 0 in order of first appearance.

    users, items (N,) int64; ratings (N,) float32; times (N,) int64 (the row order where a file has none).
    user_ids / item_ids: the file's own identifiers, by index. item_genres (n_items, G) float32 multi-hot and
    item_year (n_items,) int64 decade bucket, user_feats (n_users, 3) int64 (age group, gender, occupation): side
    features where the files have them (MeLU reads them), else empty (n, 0) tensors."""

    users: Tensor
    items: Tensor
    ratings: Tensor
    times: Tensor
    user_ids: list[str]
    item_ids: list[str]
    item_genres: Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    item_year: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    user_feats: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return int(self.users.numel())


def recbole_folder() -> Path:
    """The ml-100k folder inside the installed RecBole wheel, found without importing RecBole."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("MovieLens-100K is read from the RecBole wheel, which is not installed: "
                        "pip install -e \".[rec]\" (or pass the GroupLens ml-100k.zip or a folder of interaction "
                        "files instead)")
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*RECBOLE_ML100K)
    if not (folder / "ml-100k.inter").is_file():
        raise DataError(f"the installed RecBole has no {folder / 'ml-100k.inter'}: reinstall it "
                        "(pip install --force-reinstall recbole) or pass the GroupLens ml-100k.zip")
    return folder


def load_interactions(source: str | Path) -> Interactions:
    """`movielens-100k` (RecBole's copy), a GroupLens zip, a folder, or one interaction file -> Interactions."""
    if str(source) == MOVIELENS_100K:
        return _read_folder(recbole_folder(), MOVIELENS_100K)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"no interaction data at {path}: give `{MOVIELENS_100K}` (needs the `rec` extra), the "
                        "GroupLens ml-100k.zip, a folder holding u.data / *.inter / ratings.csv, or such a file")
    if path.is_dir():
        return _read_folder(path, str(path))
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _finish(_parse_rows(path.read_bytes().decode("utf-8", "replace"), path.name), str(path))


def _read_folder(folder: Path, source: str) -> Interactions:
    inter = sorted(folder.glob("*.inter"))
    for name in ("u.data", "ratings.dat", "ratings.csv", "ratings.tsv", "interactions.csv", "interactions.tsv"):
        if not inter and (folder / name).is_file():
            inter = [folder / name]
    if len(inter) != 1:
        found = ", ".join(p.name for p in inter) or "none"
        raise DataError(f"{folder}: expected one interaction file (u.data, *.inter, ratings.csv, ratings.dat, "
                        f"interactions.csv), found {found}; pass the file itself")
    files = {p.name: p.read_bytes().decode("latin-1") for p in folder.iterdir()
             if p.is_file() and (p.suffix in (".item", ".user") or p.name in ("u.item", "u.user"))}
    rows = _parse_rows(inter[0].read_bytes().decode("latin-1"), inter[0].name)
    return _finish(rows, source, files)


def _read_zip(path: Path) -> Interactions:
    try:
        with zipfile.ZipFile(path) as z:
            names = {Path(n).name: n for n in z.namelist() if not n.endswith("/")}
            key = next((n for n in ("u.data", "ratings.dat", "ratings.csv") if n in names), None)
            if key is None:
                raise DataError(f"{path} holds no u.data, ratings.dat or ratings.csv: is it a MovieLens zip?")
            text = z.read(names[key]).decode("latin-1")
            side = {n: z.read(names[n]).decode("latin-1") for n in ("u.item", "u.user") if n in names}
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read {path} ({e}): download the zip again") from None
    return _finish(_parse_rows(text, key), str(path), side)


def _parse_rows(text: str, name: str) -> list[tuple[str, str, float, int]]:
    """(user, item, rating, time) rows of a delimited text; a header row is skipped, a missing time is the row
    number."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{name} is empty: an interaction file needs rows of user, item, rating[, timestamp]")
    delim = "::" if "::" in lines[0] else max(("\t", ",", ";", " "), key=lambda d: lines[0].count(d))
    split = (lambda ln: ln.split("::")) if delim == "::" else \
        (lambda ln: next(csv.reader(io.StringIO(ln), delimiter=delim, skipinitialspace=True)))
    rows = []
    for i, line in enumerate(lines):
        cols = [c.strip() for c in split(line)]
        if len(cols) < 3:
            raise DataError(f"{name} line {i + 1}: {len(cols)} columns; rows need user, item, rating[, timestamp]")
        try:
            rating = float(cols[2])
            time = int(float(cols[3])) if len(cols) > 3 and cols[3] else i
        except ValueError:
            if i == 0:
                continue  # the header
            raise DataError(f"{name} line {i + 1}: rating {cols[2]!r} or timestamp is not a number") from None
        if rating != rating or abs(rating) == float("inf"):
            raise DataError(f"{name} line {i + 1}: rating {cols[2]!r} is not finite")
        rows.append((cols[0], cols[1], rating, time))
    if not rows:
        raise DataError(f"{name} has a header but no rows")
    return rows


def _finish(rows, source: str, side: dict[str, str] | None = None) -> Interactions:
    user_ix: dict[str, int] = {}
    item_ix: dict[str, int] = {}
    users = [user_ix.setdefault(u, len(user_ix)) for u, _, _, _ in rows]
    items = [item_ix.setdefault(i, len(item_ix)) for _, i, _, _ in rows]
    data = Interactions(torch.tensor(users), torch.tensor(items), torch.tensor([r[2] for r in rows]),
                        torch.tensor([r[3] for r in rows]), list(user_ix), list(item_ix), source=source)
    side = side or {}
    for name, text in side.items():
        if name.endswith("item"):
            data.item_genres, data.item_year = _item_features(text, item_ix, name == "u.item")
        elif name.endswith("user"):
            data.user_feats = _user_features(text, user_ix, name == "u.user")
    return data


def _bucket(value: float, bins: tuple[int, ...]) -> int:
    return sum(value >= b for b in bins)


def _item_features(text: str, index: dict[str, int], grouplens: bool) -> tuple[Tensor, Tensor]:
    """GroupLens u.item (pipe-separated, 19 genre flags) or RecBole ml-100k.item (genres as words)."""
    lines = text.splitlines()
    if grouplens:
        recs = [ln.split("|") for ln in lines if ln.count("|") >= 23]
        genres = {r[0]: [float(x) for x in r[-19:]] for r in recs}
        years = {r[0]: _year(r[2]) for r in recs}
        width = 19
    else:
        head = lines[0].split("\t")
        col = {h.split(":")[0]: j for j, h in enumerate(head)}
        recs = [ln.split("\t") for ln in lines[1:] if ln.strip()]
        vocab: dict[str, int] = {}
        words = {r[0]: r[col["class"]].split() if "class" in col and len(r) > col["class"] else [] for r in recs}
        for ws in words.values():
            for w in ws:
                vocab.setdefault(w, len(vocab))
        width = len(vocab)
        genres = {k: [float(w in ws) for w in vocab] for k, ws in words.items()}
        years = {r[0]: _year(r[col["release_year"]]) if "release_year" in col and len(r) > col["release_year"]
                 else 0 for r in recs}
    g = torch.zeros(len(index), width)
    y = torch.zeros(len(index), dtype=torch.long)
    for key, i in index.items():
        if key in genres:
            g[i] = torch.tensor(genres[key])
            y[i] = _bucket(years[key], YEAR_BINS) + 1 if years[key] else 0  # 0: unknown
    return g, y


def _year(text: str) -> int:
    m = re.search(r"(\d{4})", text)
    return int(m.group(1)) if m else 0


def _user_features(text: str, index: dict[str, int], grouplens: bool) -> Tensor:
    """(age group, gender, occupation) per user, 0 = unknown; GroupLens u.user or RecBole ml-100k.user."""
    lines = text.splitlines()
    recs = [ln.split("|") for ln in lines if ln.count("|") >= 3] if grouplens else \
        [ln.split("\t") for ln in lines[1:] if ln.count("\t") >= 3]
    occupations: dict[str, int] = {}
    feats = torch.zeros(len(index), 3, dtype=torch.long)
    for r in recs:
        if r[0] in index:
            age = int(r[1]) if r[1].isdigit() else 0
            occ = occupations.setdefault(r[3], len(occupations) + 1)
            feats[index[r[0]]] = torch.tensor([_bucket(age, AGE_BINS) + 1 if age else 0,
                                               1 + (r[2].upper() == "F"), occ])
    return feats
