"""Readers for series files: numpy arrays, CSV, and the UCR/UEA archive's ``.ts``, ``.arff`` and ``.txt``/``.tsv``.

Each reader returns a list of float64 arrays ``(C, L_i)``, one per series (lengths may differ), and, for the
labelled archive formats, one class label (a string) per series:

    read_series(path)            -> list of (C, L_i)      .npy, .npz, .csv: unlabelled (one class's files)
    read_labelled(path)          -> (list of (C, L_i), labels)   .ts, .arff, .txt/.tsv, .npz with X and y

Unlabelled files:
    .npy   one array: (L,) one univariate series, (C, L) one series of C channels, (n, C, L) n series
    .npz   every array in it, each read as an .npy
    .csv   one series: a row per time step, a column per channel; a first row that is not numbers is a header
Labelled files (a whole data set in one file):
    .ts    the UCR/UEA ``.ts`` format: ``@`` header lines, then per series its channels separated by ``:``, values
           by ``,``, the class label last (``@classLabel true``); ``?`` or ``NaN`` = missing
    .arff  univariate (one numeric attribute per step) or UEA multivariate (one relational attribute holding a
           row per channel); the last attribute is the class (read with scipy.io.arff)
    .txt / .tsv   the UCR format: a row per series, the class label first, then the values (tab, comma or spaces)
    .npz   arrays ``X`` (n, L) or (n, C, L) and ``y`` (n,)
Trailing missing values (how the archive pads variable-length series) are dropped; missing values inside a
series are refused (DataError), since no reader can know how to fill them.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError

UNLABELLED = (".npy", ".npz", ".csv")
LABELLED = (".ts", ".arff", ".txt", ".tsv", ".npz")
MAX_SERIES_FILE = 2 * 1024**3  # bytes: a larger file is refused before it is read


def read_series(path: str | Path) -> list[np.ndarray]:
    """The series in one unlabelled file -> list of float64 (C, L_i). Raises DataError with the fix."""
    p = _checked(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return [_trimmed(_read_csv(p), p)]
        if suffix == ".npy":
            return _from_array(np.load(p, allow_pickle=False), p)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return [s for k in z.files for s in _from_array(z[k], p, k)]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {p} as a {suffix} series file ({' '.join(str(e).split())[:160]})") from None
    raise DataError(f"{p}: series files are {', '.join(UNLABELLED)}; got {suffix or 'no extension'}")


def read_labelled(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """The series and class labels of one labelled file -> (list of float64 (C, L_i), labels)."""
    p = _checked(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".ts":
            series, labels = _read_ts(p)
        elif suffix == ".arff":
            series, labels = _read_arff(p)
        elif suffix in (".txt", ".tsv"):
            series, labels = _read_ucr_text(p)
        elif suffix == ".npz":
            series, labels = _read_labelled_npz(p)
        else:
            raise DataError(f"{p}: labelled series files are {', '.join(LABELLED)}; got {suffix or 'no extension'}")
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, IndexError) as e:
        raise DataError(f"cannot read {p} as a {suffix} file ({' '.join(str(e).split())[:160]})") from None
    if not series:
        raise DataError(f"{p} holds no series")
    return [_trimmed(s, p, i) for i, s in enumerate(series)], labels


def _checked(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"series file {p} does not exist")
    if p.stat().st_size > MAX_SERIES_FILE:
        raise DataError(f"{p} is larger than {MAX_SERIES_FILE / 1024**3:.0f} GiB; split it into smaller files")
    return p


def _from_array(a: np.ndarray, p: Path, key: str = "") -> list[np.ndarray]:
    where = f"{p}{f'[{key}]' if key else ''}"
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise DataError(f"{where} holds {a.dtype} values; series are real numbers")
    a = a.astype(np.float64)
    if a.ndim == 1:
        return [_trimmed(a[None], p)]
    if a.ndim == 2:
        return [_trimmed(a, p)]
    if a.ndim == 3:
        return [_trimmed(s, p, i) for i, s in enumerate(a)]
    raise DataError(f"{where} has shape {a.shape}; save (L,) for one series, (C, L) for one series of C channels "
                    "or (n, C, L) for n series (n univariate series: (n, 1, L))")


def _read_csv(p: Path) -> np.ndarray:
    """Rows = time steps, columns = channels -> (C, L)."""
    rows = [r for r in csv.reader(io.StringIO(p.read_text(encoding="utf-8-sig"))) if any(c.strip() for c in r)]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise DataError(f"{p} holds no rows of numbers; write one row per time step, one column per channel")
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width or not _numeric(r)), None)
    if bad is not None:
        raise DataError(f"{p}: row {bad + 1} of the data is {rows[bad][:4]!r:.80}; every row must hold {width} "
                        "numbers (one per channel)")
    return np.array([[_number(c) for c in r] for r in rows], dtype=np.float64).T


def _numeric(row: list[str]) -> bool:
    try:
        [_number(c) for c in row]
    except ValueError:
        return False
    return True


def _number(text: str) -> float:
    t = text.strip()
    return float("nan") if t in ("?", "") else float(t)


def _read_ts(p: Path) -> tuple[list[np.ndarray], list[str]]:
    series, labels, labelled, in_data = [], [], True, False
    for n, line in enumerate(p.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            words = line.lower().split()
            if words[0] == "@timestamps" and words[1:2] == ["true"]:
                raise DataError(f"{p}: time-stamped .ts files are not read; export the series without time stamps")
            if words[0] == "@classlabel":
                labelled = words[1:2] == ["true"]
            in_data = words[0] == "@data"
            continue
        parts = line.split(":")
        if labelled:
            parts, label = parts[:-1], parts[-1].strip()
            labels.append(label)
        if not parts:
            raise DataError(f"{p}, line {n}: no values before the class label")
        channels = [[_number(v) for v in part.split(",")] for part in parts]
        if len({len(c) for c in channels}) != 1:  # channels of one series may differ in length: pad with NaN
            width = max(len(c) for c in channels)
            channels = [c + [float("nan")] * (width - len(c)) for c in channels]
        series.append(np.array(channels, dtype=np.float64))
    if not in_data:
        raise DataError(f"{p} has no @data line: is it a .ts file of the UCR/UEA archive?")
    if not labelled:
        raise DataError(f"{p} has no class labels (@classLabel false); put each class's series in its own folder")
    return series, labels


def _read_arff(p: Path) -> tuple[list[np.ndarray], list[str]]:
    from scipy.io import arff

    data, meta = arff.loadarff(str(p))
    names = meta.names()
    label = names[-1]
    labels = [v.decode() if isinstance(v, bytes) else str(v) for v in data[label]]
    values = names[:-1]
    if len(values) == 1 and meta.types()[0] == "relational":  # UEA multivariate: a row per channel
        series = [np.array(np.asarray(rel).tolist(), dtype=np.float64).reshape(len(rel), -1)
                  for rel in data[values[0]]]
    else:
        series = [np.array([[row[v] for v in values]], dtype=np.float64) for row in data]
    return series, labels


def _read_ucr_text(p: Path) -> tuple[list[np.ndarray], list[str]]:
    series, labels = [], []
    for line in p.read_text(encoding="utf-8-sig").splitlines():
        cells = line.replace("\t", ",").replace(" ", ",").split(",")
        cells = [c for c in cells if c.strip()]
        if not cells:
            continue
        label = cells[0].strip()
        labels.append(str(int(float(label))) if _is_whole(label) else label)
        series.append(np.array([[_number(c) for c in cells[1:]]], dtype=np.float64))
    return series, labels


def _is_whole(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def _read_labelled_npz(p: Path) -> tuple[list[np.ndarray], list[str]]:
    with np.load(p, allow_pickle=False) as z:
        if not {"X", "y"} <= set(z.files):
            raise DataError(f"{p} has arrays {z.files}; a labelled .npz holds X (n, L) or (n, C, L) and y (n,)")
        x, y = z["X"], z["y"]
    if x.ndim == 2:
        x = x[:, None]
    if x.ndim != 3 or y.shape != (x.shape[0],):
        raise DataError(f"{p}: X has shape {x.shape} and y {y.shape}; give X (n, L) or (n, C, L) and y (n,)")
    return _from_array(x, p, "X"), [str(v.item() if hasattr(v, "item") else v) for v in y]


def _trimmed(s: np.ndarray, p: Path, index: int = 0) -> np.ndarray:
    """(C, L) without its trailing all-missing steps (the archive's padding); refuses missing values inside."""
    finite = np.isfinite(s)
    if not finite.any():
        raise DataError(f"{p}: series {index} has no values")
    steps = finite.any(0)
    last = int(np.nonzero(steps)[0][-1]) + 1
    s = s[:, :last]
    if not np.isfinite(s).all():
        raise DataError(f"{p}: series {index} has missing or infinite values inside it; fill or drop them first")
    return s
