"""scikit-learn's 8x8 handwritten digits as ten classes ``digit-0`` .. ``digit-9`` (about 180 images each).

Pixels are 0..16 with ink bright; they are scaled to [0, 1] and resized (upsampled) to
``image_size`` with the shared resize. Digits 7, 8 and 9 are held out unless ``DataConfig.heldout``
names others (``"7"`` or ``"digit-7"``).

Example:
    >>> from metagan.config import DataConfig
    >>> train, held = load_digits(DataConfig(source="digits", image_size=16))
    >>> train.class_names[-1], held.class_names, train.images[0].shape[1:]
    ('digit-6', ['digit-7', 'digit-8', 'digit-9'], torch.Size([1, 16, 16]))
"""
from __future__ import annotations

import torch

from ..config import DataConfig
from ..errors import ConfigError
from .base import ClassDataset, expand_channels, resize_to_uint8

DEFAULT_HELDOUT = ("7", "8", "9")
NAMES = [f"digit-{d}" for d in range(10)]


def load_digits(cfg: DataConfig) -> tuple[ClassDataset, ClassDataset]:
    """Digits per ``cfg`` (image_size, channels, heldout) -> (train, held-out)."""
    from sklearn.datasets import load_digits as sklearn_digits  # bundled with scikit-learn: no download

    bunch = sklearn_digits()
    pixels = torch.from_numpy(bunch.images).float().div_(16.0).clamp_(0.0, 1.0)  # (1797, 8, 8)
    labels = torch.from_numpy(bunch.target)
    small = resize_to_uint8(pixels[:, None], cfg.image_size)  # (1797, 1, size, size)
    small = expand_channels(small, cfg.channels)
    images = [small[labels == d] for d in range(10)]

    held = _parse_heldout(cfg.heldout or DEFAULT_HELDOUT)
    train_ids = [d for d in range(10) if d not in held]
    held_ids = sorted(held)
    return (ClassDataset("digits/train", [images[d] for d in train_ids], [NAMES[d] for d in train_ids]),
            ClassDataset("digits/heldout", [images[d] for d in held_ids], [NAMES[d] for d in held_ids]))


def _parse_heldout(names: tuple[str, ...]) -> set[int]:
    held = set()
    for name in names:
        key = name.strip().removeprefix("digit-")
        if key not in {str(d) for d in range(10)}:
            raise ConfigError(f"data.heldout: unknown digits class {name!r}; classes are "
                              f"{', '.join(NAMES)} (or just 0..9)")
        held.add(int(key))
    if len(held) == 10:
        raise ConfigError("data.heldout names all ten digits; leave at least one class for training")
    return held
