"""Class-indexed datasets (images and series) and the few-shot task sampler.

Every source gives two disjoint ``ClassDataset``s, train and held-out (no class in both):

- images (``digits``, ``omniglot``, ``folder``): uint8 ``(n_i, C, H, W)``, ink bright (255); models see
  ``to_model_space(x)`` in [-1, 1].
- series (``ucr``, ``series-folder``; ``metagan.data.series``, docs/series.md): float32 ``(n_i, C, L)`` already
  in model space, C = ``cfg.channels``, L = ``cfg.length``: every series resampled to L steps, then per channel
  ``clip((x - center) / scale, -1, 1)`` with center and scale fitted on the training classes only (or taken
  from ``cfg.center`` / ``cfg.scale``). ``series.to_units`` maps model space back to the data's units;
  ``series.fit_config(cfg)`` returns ``cfg`` with the fitted numbers filled in.

``dataset.images[c]`` is class c's tensor either way, ``dataset.shape`` one example's shape,
``dataset.is_image`` which kind; ``as_model_space(x)`` gives model-space floats for both.

Example:
    >>> import torch
    >>> from metagan.config import DataConfig
    >>> train, held = build_datasets(DataConfig(source="digits", image_size=8))
    >>> sampler = TaskSampler(train, k_shot=5, q_query=10, meta_batch=4)
    >>> batch = sampler.sample(torch.Generator().manual_seed(0))
    >>> tuple(batch.support.shape), tuple(batch.query.shape)
    ((4, 5, 1, 8, 8), (4, 10, 1, 8, 8))
    >>> train, held = build_datasets(DataConfig(source="ucr", dataset="PigCVP", length=128))  # doctest: +SKIP
    >>> train.num_classes, held.num_classes, train.shape, train.images[0].dtype           # doctest: +SKIP
    (36, 16, (1, 128), torch.float32)
"""
from __future__ import annotations

from ..config import SERIES_SOURCES, DataConfig
from ..errors import ConfigError
from .base import ClassDataset, as_model_space, from_model_space, resize_images, resize_to_uint8, to_model_space
from .images import read_image, save_grid, write_image
from .tasks import TaskBatch, TaskSampler

__all__ = [
    "ClassDataset", "TaskBatch", "TaskSampler", "as_model_space", "build_datasets", "from_model_space", "read_image",
    "resize_images", "resize_to_uint8", "save_grid", "to_model_space", "write_image", "files_inverted",
    "fit_config", "is_series", "sample_shape",
]


def is_series(cfg: DataConfig) -> bool:
    """Whether this source gives series (C, L) rather than images."""
    return cfg.source in SERIES_SOURCES


def sample_shape(cfg: DataConfig) -> tuple[int, ...]:
    """The shape of one example, from the config alone: images (C, S, S), series (C, L)."""
    return (cfg.channels, cfg.length) if is_series(cfg) else (cfg.channels, cfg.image_size, cfg.image_size)


def fit_config(cfg: DataConfig) -> DataConfig:
    """``cfg`` with what its source fits on the training classes filled in (series: data.center and data.scale;
    images: nothing). Training stores the result in the run's config, so adaptation reads data the same way."""
    if not is_series(cfg):
        return cfg
    from .series import fit_config as fit

    return fit(cfg)


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
    elif cfg.source in SERIES_SOURCES:
        from .series import load_series as load
    else:
        raise ConfigError(f"data.source={cfg.source!r} is not one of: digits, omniglot, folder, "
                          f"{', '.join(SERIES_SOURCES)}")
    if cfg.channels not in (1, 3) and cfg.source not in SERIES_SOURCES:
        raise ConfigError(f"data.channels must be 1 or 3, got {cfg.channels}")
    if cfg.image_size < 1:
        raise ConfigError(f"data.image_size must be at least 1, got {cfg.image_size}")
    train, heldout = load(cfg)
    overlap = set(train.class_names) & set(heldout.class_names)
    if overlap:  # a bug in a loader, not something a user can cause
        raise RuntimeError(f"{len(overlap)} classes are both in {train.name} and {heldout.name} "
                        f"(e.g. {sorted(overlap)[0]!r}); this is a bug in metagan.data, please report it")
    return train, heldout
