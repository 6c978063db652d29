"""metagan.data.folders: user image folders of mixed sizes and modes, held-out choice, and errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metagan.config import DataConfig
from metagan.data import TaskSampler, build_datasets, read_image
from metagan.data.folders import HELDOUT_SEED, choose_heldout
from metagan.errors import ConfigError, DataError


def _glyph(size: tuple[int, int], seed: int) -> np.ndarray:
    """A dark bar on white paper, somewhere that depends on the seed: (H, W) uint8."""
    paper = np.full((size[1], size[0]), 255, np.uint8)
    col = (seed * 7) % (size[0] - 4)
    paper[:, col:col + 4] = 0
    return paper


def _tree(root: Path, images_per_class: int = 6) -> Path:
    """Five classes in different files, sizes and colour modes, plus files that must be ignored."""
    makers = {
        "alpha": lambda i: Image.fromarray(np.dstack([_glyph((40, 30), i)] * 3 + [np.full((30, 40), 255, np.uint8)]),
                                           "RGBA"),
        "beta": lambda i: Image.fromarray(_glyph((64, 64), i)),  # saved as grey JPEG
        "gamma": lambda i: Image.fromarray(_glyph((20, 20), i)).convert("P"),  # palette GIF
        "delta": lambda i: Image.fromarray(_glyph((33, 17), i)).convert("1"),  # 1-bit BMP
        "epsilon": lambda i: Image.fromarray(np.dstack([_glyph((24, 24), i)] * 3)),  # RGB WebP
    }
    suffix = {"alpha": ".png", "beta": ".JPG", "gamma": ".gif", "delta": ".bmp", "epsilon": ".webp"}
    for name, make in makers.items():
        (root / name).mkdir(parents=True)
        for i in range(images_per_class):
            kw = {"quality": 95} if name == "beta" else {"lossless": True} if name == "epsilon" else {}
            make(i).save(root / name / f"{i:03d}{suffix[name]}", **kw)
        (root / name / "notes.txt").write_text("ignored: not an image extension")
        (root / name / ".DS_Store").write_bytes(b"ignored: hidden")
    (root / "alpha" / "nested").mkdir()
    Image.fromarray(_glyph((8, 8), 0)).save(root / "alpha" / "nested" / "ignored.png")  # not recursive
    (root / ".hidden_class").mkdir()
    return root


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"source": "folder", "root": str(root), "image_size": 16, "invert": True, **kw})


def test_mixed_folder_tree_loads(tmp_path):
    root = _tree(tmp_path / "glyphs")
    train, held = build_datasets(_cfg(root, heldout=("gamma",)))
    assert train.class_names == ["alpha", "beta", "delta", "epsilon"] and held.class_names == ["gamma"]
    assert train.class_sizes == [6, 6, 6, 6]  # notes.txt, .DS_Store and nested/ are skipped
    for x in train.images + held.images:
        assert x.shape[1:] == (1, 16, 16) and x.dtype == torch.uint8
        # invert=True: the dark bar becomes bright ink on a dark background
        assert x.float().mean() < 128 and x.amax() > 200
    rgb, _ = build_datasets(_cfg(root, heldout=("gamma",), channels=3))
    assert rgb.channels == 3 and torch.equal(rgb.images[0][:, :1], train.images[0])
    # files are read in sorted order, each exactly as read_image reads it: image 2 of delta is 002.bmp
    assert torch.equal(train.images[2][2], read_image(root / "delta" / "002.bmp", 16, 1, invert=True))
    assert not torch.equal(train.images[2][2], train.images[2][3])


def test_fraction_heldout_is_deterministic_and_leaves_both_sides(tmp_path):
    names = [f"c{i:02d}" for i in range(10)]
    held = choose_heldout(names, (), 0.3)
    assert len(held) == 3 and held == choose_heldout(names, (), 0.3)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(HELDOUT_SEED))
    assert held == {names[i] for i in order[:3].tolist()}
    assert len(choose_heldout(names[:2], (), 0.01)) == 1 and len(choose_heldout(names[:2], (), 0.99)) == 1
    root = _tree(tmp_path / "glyphs", images_per_class=2)
    train, heldout = build_datasets(_cfg(root, heldout_fraction=0.4))
    assert len(heldout.class_names) == 2 and len(train.class_names) == 3
    assert not set(train.class_names) & set(heldout.class_names)


def test_unknown_heldout_name_lists_the_classes(tmp_path):
    root = _tree(tmp_path / "glyphs", images_per_class=1)
    with pytest.raises(ConfigError, match="'zeta'.*alpha, beta, delta, epsilon, gamma"):
        build_datasets(_cfg(root, heldout=("zeta",)))


def test_corrupt_and_fake_images_are_named(tmp_path):
    root = _tree(tmp_path / "glyphs", images_per_class=2)
    good = (root / "alpha" / "000.png").read_bytes()
    (root / "alpha" / "001.png").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DataError, match=r"alpha/001\.png"):
        build_datasets(_cfg(root))
    (root / "alpha" / "001.png").write_bytes(good)
    (root / "beta" / "000.JPG").write_text("this is a text file with an image extension")
    with pytest.raises(DataError, match=r"beta/000\.JPG.*not an image"):
        build_datasets(_cfg(root))


def test_missing_root_empty_root_and_empty_class(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_datasets(_cfg(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        build_datasets(_cfg(tmp_path / "empty"))
    root = _tree(tmp_path / "glyphs", images_per_class=1)
    (root / "zeta").mkdir()
    (root / "zeta" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="zeta has no images"):
        build_datasets(_cfg(root))
    with pytest.raises(ConfigError, match="data.root"):
        build_datasets(DataConfig(source="folder"))


def test_sampler_rejects_classes_smaller_than_a_task(tmp_path):
    root = _tree(tmp_path / "glyphs", images_per_class=3)
    train, _ = build_datasets(_cfg(root, heldout=("gamma",)))
    with pytest.raises(DataError, match=r"has only 3 images.*task.k_shot"):
        TaskSampler(train, k_shot=2, q_query=2, meta_batch=2)
    with pytest.raises(ConfigError, match="task.k_shot"):
        TaskSampler(train, k_shot=0, q_query=2, meta_batch=2)
    batch = TaskSampler(train, k_shot=2, q_query=1, meta_batch=2).sample(torch.Generator().manual_seed(0))
    assert batch.support.shape == (2, 2, 1, 16, 16)
