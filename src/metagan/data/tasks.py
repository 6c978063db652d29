"""Few-shot generation tasks: a task is one class, K support and Q query examples from it (images or series).

The sampler only sees the dataset it is given: build it on the train split, and held-out classes
cannot leak into meta-training. All randomness comes from the ``torch.Generator`` passed in.

Example:
    >>> import torch
    >>> from metagan.data.base import ClassDataset
    >>> ds = ClassDataset("toy", [torch.full((6, 1, 4, 4), i, dtype=torch.uint8) for i in range(3)],
    ...                   ["a", "b", "c"])
    >>> batch = TaskSampler(ds, k_shot=2, q_query=3, meta_batch=2).sample(torch.Generator().manual_seed(0))
    >>> tuple(batch.support.shape), tuple(batch.query.shape), tuple(batch.classes.shape)
    ((2, 2, 1, 4, 4), (2, 3, 1, 4, 4), (2,))
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, DataError
from .base import ClassDataset, as_model_space


@dataclass
class TaskBatch:
    """A meta-batch of B tasks in model space (images: float in [-1, 1], ink = +1; series: normalised floats)."""

    support: torch.Tensor  # (B, K, *shape): images (B, K, C, H, W), series (B, K, C, L)
    query: torch.Tensor  # (B, Q, *shape); Q may be 0
    classes: torch.Tensor  # (B,) int64 class indices into the sampler's dataset


class TaskSampler:
    """Draws meta-batches of K-shot tasks from one ClassDataset.

    Args:
        dataset: the classes to draw from (the train split, for meta-training).
        k_shot: support images per task, at least 1.
        q_query: query images per task, at least 0 (disjoint from the support images).
        meta_batch: tasks per batch; distinct classes unless it exceeds the number of classes.

    Raises:
        ConfigError: k_shot < 1, q_query < 0 or meta_batch < 1.
        DataError: some class has fewer than k_shot + q_query images.
    """

    def __init__(self, dataset: ClassDataset, k_shot: int, q_query: int, meta_batch: int):
        if k_shot < 1:
            raise ConfigError(f"task.k_shot={k_shot}: a task needs at least one support image; "
                              "set task.k_shot to 1 or more")
        if q_query < 0:
            raise ConfigError(f"task.q_query={q_query} is negative; set it to 0 or more")
        if meta_batch < 1:
            raise ConfigError(f"task.meta_batch={meta_batch}: set it to at least 1")
        _check_class_sizes(dataset, k_shot, q_query)
        self.dataset = dataset
        self.k_shot, self.q_query, self.meta_batch = k_shot, q_query, meta_batch

    def sample(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> TaskBatch:
        """One meta-batch: ``meta_batch`` classes, then K + Q distinct images from each."""
        n = self.dataset.num_classes
        if self.meta_batch <= n:
            classes = torch.randperm(n, generator=generator)[:self.meta_batch]
        else:  # more tasks than classes: classes repeat
            classes = torch.randint(n, (self.meta_batch,), generator=generator)
        pairs = [self._draw(int(c), self.k_shot, self.q_query, generator) for c in classes]
        support = torch.stack([s for s, _ in pairs])
        query = torch.stack([q for _, q in pairs])
        return TaskBatch(as_model_space(support, dtype), as_model_space(query, dtype), classes.to(torch.int64))

    def sample_class(self, class_index: int, generator: torch.Generator, k: int, q: int = 0,
                     dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """K support and Q query examples of one class (for evaluation) -> ``(K, *shape)``, ``(Q, *shape)``."""
        if not 0 <= class_index < self.dataset.num_classes:
            raise IndexError(f"class index {class_index} out of range 0..{self.dataset.num_classes - 1}")
        if k < 1 or q < 0:
            raise ConfigError(f"sample_class needs k >= 1 and q >= 0, got k={k}, q={q}")
        size = self.dataset.class_sizes[class_index]
        if k + q > size:
            raise DataError(f"{self.dataset.name}: class {self.dataset.class_names[class_index]!r} has {size} "
                            f"images, fewer than k + q = {k + q}; ask for fewer")
        support, query = self._draw(class_index, k, q, generator)
        return as_model_space(support, dtype), as_model_space(query, dtype)

    def _draw(self, c: int, k: int, q: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """k + q distinct examples of class c (as stored), split into (k, *shape) and (q, *shape)."""
        images = self.dataset.images[c]
        picks = images[torch.randperm(images.shape[0], generator=generator)[:k + q]]
        return picks[:k], picks[k:]


def _check_class_sizes(dataset: ClassDataset, k_shot: int, q_query: int) -> None:
    sizes = dataset.class_sizes
    smallest = min(range(len(sizes)), key=sizes.__getitem__)
    if sizes[smallest] < k_shot + q_query:
        raise DataError(
            f"{dataset.name}: class {dataset.class_names[smallest]!r} has only {sizes[smallest]} images, but a "
            f"task takes task.k_shot + task.q_query = {k_shot} + {q_query} = {k_shot + q_query} distinct images "
            f"per class. Lower task.k_shot/task.q_query so that they sum to at most {sizes[smallest]}, or add "
            "images to that class.")
