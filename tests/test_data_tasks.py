"""metagan.data.tasks: shapes, determinism, distinctness, and the errors of TaskSampler."""
from __future__ import annotations

import pytest
import torch

from metagan.data import ClassDataset, TaskSampler, from_model_space
from metagan.errors import ConfigError, DataError


def _numbered(sizes=(20, 20, 20, 20, 20)) -> ClassDataset:
    """Class c image i is filled with the value 20 * c + i, so every image is identifiable."""
    images = [torch.stack([torch.full((1, 3, 3), 20 * c + i, dtype=torch.uint8) for i in range(n)])
              for c, n in enumerate(sizes)]
    return ClassDataset("numbered", images, [f"class-{c}" for c in range(len(sizes))])


def _ids(x: torch.Tensor) -> list[int]:
    """(N, C, H, W) model-space images -> the number each was filled with."""
    return from_model_space(x)[:, 0, 0, 0].tolist()


def test_shapes_dtype_and_content():
    sampler = TaskSampler(_numbered(), k_shot=3, q_query=4, meta_batch=5)
    batch = sampler.sample(torch.Generator().manual_seed(0), dtype=torch.float64)
    assert batch.support.shape == (5, 3, 1, 3, 3) and batch.query.shape == (5, 4, 1, 3, 3)
    assert batch.support.dtype == torch.float64 and batch.classes.dtype == torch.int64
    assert batch.support.min() >= -1 and batch.support.max() <= 1
    assert sorted(batch.classes.tolist()) == [0, 1, 2, 3, 4]  # meta_batch == classes: each once
    for c, support, query in zip(batch.classes.tolist(), batch.support, batch.query, strict=True):
        ids = _ids(support) + _ids(query)
        assert len(set(ids)) == 7  # K + Q distinct images: no query image is also a support image
        assert all(i // 20 == c for i in ids)  # all from the class the batch names


def test_same_seed_same_batch_different_seed_different_batch():
    sampler = TaskSampler(_numbered(), k_shot=2, q_query=2, meta_batch=3)
    a = sampler.sample(torch.Generator().manual_seed(7))
    b = sampler.sample(torch.Generator().manual_seed(7))
    c = sampler.sample(torch.Generator().manual_seed(8))
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query) and torch.equal(a.classes, b.classes)
    assert not (torch.equal(a.support, c.support) and torch.equal(a.classes, c.classes))
    # the global RNG plays no part
    torch.manual_seed(0)
    d = sampler.sample(torch.Generator().manual_seed(7))
    torch.manual_seed(1)
    e = sampler.sample(torch.Generator().manual_seed(7))
    assert torch.equal(d.support, e.support)


def test_classes_distinct_when_possible_and_repeat_only_when_needed():
    sampler = TaskSampler(_numbered(), k_shot=1, q_query=0, meta_batch=4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        assert len(set(sampler.sample(gen).classes.tolist())) == 4
    big = TaskSampler(_numbered(), k_shot=1, q_query=0, meta_batch=12)
    batch = big.sample(gen)
    assert batch.classes.shape == (12,) and batch.query.shape == (12, 0, 1, 3, 3)
    assert set(batch.classes.tolist()) <= set(range(5))


def test_sample_class_for_evaluation():
    sampler = TaskSampler(_numbered(), k_shot=1, q_query=1, meta_batch=1)
    support, query = sampler.sample_class(3, torch.Generator().manual_seed(0), k=5, q=15)
    assert support.shape == (5, 1, 3, 3) and query.shape == (15, 1, 3, 3)
    ids = _ids(support) + _ids(query)
    assert sorted(ids) == list(range(60, 80))
    with pytest.raises(DataError, match="class-3"):
        sampler.sample_class(3, torch.Generator(), k=15, q=6)
    with pytest.raises(IndexError):
        sampler.sample_class(5, torch.Generator(), k=1)


def test_k_zero_and_other_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="task.k_shot"):
        TaskSampler(_numbered(), k_shot=0, q_query=5, meta_batch=2)
    with pytest.raises(ConfigError, match="q_query"):
        TaskSampler(_numbered(), k_shot=1, q_query=-1, meta_batch=2)
    with pytest.raises(ConfigError, match="meta_batch"):
        TaskSampler(_numbered(), k_shot=1, q_query=1, meta_batch=0)


def test_too_small_class_names_the_smallest_and_the_fix():
    ds = _numbered((20, 6, 9))
    with pytest.raises(DataError, match=r"'class-1' has only 6 images.*task.k_shot.*at most 6"):
        TaskSampler(ds, k_shot=4, q_query=3, meta_batch=2)
    TaskSampler(ds, k_shot=4, q_query=2, meta_batch=2)  # exactly enough is fine
