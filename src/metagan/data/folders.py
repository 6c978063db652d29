"""Your own images: one folder per class, ``root/<class>/*.{png,jpg,jpeg,bmp,gif,webp}``.

Class folders and files are taken in sorted name order; extensions are matched case-insensitively;
sub-folders of a class folder, hidden entries (``.name``) and other files are ignored. Every image is
read with ``read_image`` (any size or colour mode; ``DataConfig.invert`` for dark strokes on light
paper) and resized to ``image_size``.

Held-out classes: the ones named in ``DataConfig.heldout``, else ``round(heldout_fraction * n)``
classes (at least one, and at least one left for training) chosen by ``torch.randperm`` with a
generator seeded with ``HELDOUT_SEED`` = 0, so the choice depends only on the class names.

Example:
    >>> from metagan.config import DataConfig
    >>> train, held = load_folders(DataConfig(source="folder", root="my_glyphs", image_size=32,
    ...                                       invert=True))        # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .base import ClassDataset
from .images import read_image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
HELDOUT_SEED = 0


def load_folders(cfg: DataConfig) -> tuple[ClassDataset, ClassDataset]:
    """Image folders per ``cfg`` (root, image_size, channels, invert, heldout, heldout_fraction)."""
    classes = class_folders(cfg.root)
    names = [p.name for p in classes]
    held = choose_heldout(names, cfg.heldout, cfg.heldout_fraction)
    images = [_read_class(folder, cfg) for folder in classes]
    train_ids = [i for i, n in enumerate(names) if n not in held]
    held_ids = [i for i, n in enumerate(names) if n in held]
    return (ClassDataset("folder/train", [images[i] for i in train_ids], [names[i] for i in train_ids]),
            ClassDataset("folder/heldout", [images[i] for i in held_ids], [names[i] for i in held_ids]))


def class_folders(root: str | None) -> list[Path]:
    """The class folders under ``root``, sorted by name. Raises DataError if there are none."""
    if not root:
        raise ConfigError("data.source=folder needs data.root: a folder holding one sub-folder per class")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist; set data.root to a folder holding one "
                        "sub-folder of images per class")
    classes = sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name)
    if not classes:
        raise DataError(f"{path} has no class folders; put each class's images in its own sub-folder, "
                        f"e.g. {path / 'class_a' / '0001.png'}")
    return classes


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS),
                  key=lambda p: p.name)


def choose_heldout(names: list[str], heldout: tuple[str, ...], fraction: float) -> set[str]:
    """Names of the held-out classes: ``heldout`` if given (checked), else a seeded fraction."""
    if len(names) < 2:
        raise DataError(f"found {len(names)} class folder ({', '.join(names)}); at least 2 are needed, "
                        "one to meta-train on and one to hold out")
    if heldout:
        unknown = [h for h in heldout if h not in names]
        if unknown:
            raise ConfigError(f"data.heldout: unknown class {unknown[0]!r}; the class folders are: "
                              f"{', '.join(names)}")
        if set(heldout) == set(names):
            raise ConfigError("data.heldout names every class; leave at least one class for training")
        return set(heldout)
    count = min(max(round(fraction * len(names)), 1), len(names) - 1)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(HELDOUT_SEED))
    return {names[i] for i in order[:count].tolist()}


def _read_class(folder: Path, cfg: DataConfig) -> torch.Tensor:
    files = image_files(folder)
    if not files:
        raise DataError(f"class folder {folder} has no images ({', '.join(EXTENSIONS)}); add some or "
                        "remove the folder")
    return torch.stack([read_image(f, cfg.image_size, cfg.channels, cfg.invert) for f in files])
