"""Class-indexed image datasets (Omniglot, digits, image folders) and the few-shot task sampler.

Every source gives two disjoint ``ClassDataset``s, train and held-out, of uint8 images with ink
bright (255). Models see ``to_model_space(x)`` in [-1, 1].

Example:
    >>> import torch
    >>> from metagan.config import DataConfig
    >>> train, held = build_datasets(DataConfig(source="digits", image_size=8))
    >>> sampler = TaskSampler(train, k_shot=5, q_query=10, meta_batch=4)
    >>> batch = sampler.sample(torch.Generator().manual_seed(0))
    >>> tuple(batch.support.shape), tuple(batch.query.shape)
    ((4, 5, 1, 8, 8), (4, 10, 1, 8, 8))
"""
from __future__ import annotations

from ..config import DataConfig
from ..errors import ConfigError
from .base import ClassDataset, from_model_space, resize_images, resize_to_uint8, to_model_space
from .images import read_image, save_grid, write_image
from .tasks import TaskBatch, TaskSampler

__all__ = [
    "ClassDataset", "TaskBatch", "TaskSampler", "build_datasets", "from_model_space", "read_image",
    "resize_images", "resize_to_uint8", "save_grid", "to_model_space", "write_image", "files_inverted",
]


def files_inverted(cfg: DataConfig) -> bool:
    """Whether this source's image files hold dark ink on a light background (Omniglot's PNGs, or a
    folder with data.invert), so reading inverts them to ink-bright and writing inverts them back."""
    return cfg.invert or cfg.source == "omniglot"


def build_datasets(cfg: DataConfig) -> tuple[ClassDataset, ClassDataset]:
    """Load ``cfg.source`` -> (train, held-out), with no class in both.

    Raises:
        ConfigError: unknown source or split, bad held-out names.
        DataError: missing, corrupt or unreadable data; the message says what to do.
        RuntimeError: train and held-out share a class (a bug guard).
    """
    if cfg.source == "omniglot":
        from .omniglot import load_omniglot as load
    elif cfg.source == "digits":
        from .digits import load_digits as load
    elif cfg.source == "folder":
        from .folders import load_folders as load
    else:
        raise ConfigError(f"data.source={cfg.source!r} is not one of: digits, omniglot, folder")
    if cfg.channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3, got {cfg.channels}")
    if cfg.image_size < 1:
        raise ConfigError(f"data.image_size must be at least 1, got {cfg.image_size}")
    train, heldout = load(cfg)
    overlap = set(train.class_names) & set(heldout.class_names)
    if overlap:  # a bug in a loader, not something a user can cause
        raise RuntimeError(f"{len(overlap)} classes are both in {train.name} and {heldout.name} "
                        f"(e.g. {sorted(overlap)[0]!r}); this is a bug in metagan.data, please report it")
    return train, heldout
