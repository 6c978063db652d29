"""metagan.data.digits: scikit-learn digits as ten classes, 7/8/9 held out by default."""
from __future__ import annotations

import pytest
import torch

from metagan.config import DataConfig
from metagan.data import build_datasets
from metagan.errors import ConfigError


def test_default_split_sizes_ranges_and_polarity():
    train, held = build_datasets(DataConfig(source="digits", image_size=16))
    assert train.class_names == [f"digit-{d}" for d in range(7)]
    assert held.class_names == ["digit-7", "digit-8", "digit-9"]
    assert sum(train.class_sizes) + sum(held.class_sizes) == 1797 and train.min_class_size >= 170
    x = torch.cat(train.images + held.images)
    assert x.shape[1:] == (1, 16, 16) and x.dtype == torch.uint8
    assert x.max() == 255 and x.min() == 0
    # ink is bright: strokes cover a minority of the pixels, and the border is mostly background
    assert (x.float() / 255).mean() < 0.4
    assert x[:, :, :, 0].float().mean() < x[:, :, 6:10, 6:10].float().mean()


def test_heldout_override_accepts_both_spellings_and_rejects_unknowns():
    train, held = build_datasets(DataConfig(source="digits", image_size=8, heldout=("0", "digit-5")))
    assert held.class_names == ["digit-0", "digit-5"] and len(train.class_names) == 8
    with pytest.raises(ConfigError, match="digit-0, digit-1"):
        build_datasets(DataConfig(source="digits", heldout=("eleven",)))
    with pytest.raises(ConfigError, match="at least one class"):
        build_datasets(DataConfig(source="digits", heldout=tuple(str(d) for d in range(10))))


def test_rgb_and_resize_are_consistent():
    grey, _ = build_datasets(DataConfig(source="digits", image_size=8))
    rgb, _ = build_datasets(DataConfig(source="digits", image_size=8, channels=3))
    assert rgb.channels == 3 and torch.equal(rgb.images[0], grey.images[0].expand(-1, 3, -1, -1))
    # at 8x8 no resampling happens: pixels are the original 0..16 values scaled by 255/16
    from sklearn.datasets import load_digits
    bunch = load_digits()
    first_zero = torch.from_numpy(bunch.images[bunch.target == 0][0])
    assert torch.equal(grey.images[0][0, 0], (first_zero / 16 * 255).round().to(torch.uint8))
