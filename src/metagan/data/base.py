"""Class-indexed datasets and the one resize used on every image path.

A ``ClassDataset`` holds one tensor per class, of either kind:

- images: uint8 ``(n_i, C, H, W)``, H == W, ink (foreground) bright: 0 = background, 255 = ink; models see
  ``to_model_space(x)`` in [-1, 1]. Every image loader (Omniglot npz, Omniglot PNG zips, digits, image folders)
  goes through ``resize_to_uint8``, so the same pixels reach the model whichever file form they came from.
- examples: floating ``(n_i, *shape)`` (series ``(n_i, C, L)``, vectors ``(n_i, 1, D)``), already in model
  space: the loader applied its stated normalisation (``metagan.data.series``).

``as_model_space`` turns either kind into model-space floats, so the task sampler serves both.

Example:
    >>> import torch
    >>> ds = ClassDataset("toy", [torch.zeros(3, 1, 8, 8, dtype=torch.uint8)], ["a"])
    >>> ds.num_classes, ds.image_size, ds.channels, ds.min_class_size, ds.shape
    (1, 8, 1, 3, (1, 8, 8))
    >>> to_model_space(ds.images[0]).min().item()
    -1.0
    >>> series = ClassDataset("toy", [torch.zeros(4, 2, 16)], ["a"])
    >>> series.is_image, series.shape, as_model_space(series.images[0]).shape
    (False, (2, 16), torch.Size([4, 2, 16]))
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DataError

# Images resized per call to F.interpolate; bounds peak memory (4096 x 105 x 105 float32 = 180 MB).
_RESIZE_CHUNK = 4096


@dataclass
class ClassDataset:
    """Examples grouped by class: images, or float examples already in model space.

    Attributes:
        name: what this is, e.g. ``"omniglot/evaluation"``, ``"digits/heldout"`` or ``"ucr-PigCVP/train"``.
        images: one tensor per class, all of one kind: uint8 images ``(n_i, C, H, W)`` (values 0..255,
            255 = ink; H == W), or float32/float64 examples ``(n_i, *shape)`` in model space (series
            ``(n_i, C, L)``). All classes share the shape after n_i; n_i may differ.
        class_names: one globally unique name per class, e.g. ``"Gurmukhi/character42/rot090"``.
    """

    name: str
    images: list[torch.Tensor]
    class_names: list[str]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.class_names):
            raise DataError(f"{self.name}: {len(self.images)} image tensors but {len(self.class_names)} "
                            "class names; give one name per class")
        if not self.images:
            raise DataError(f"{self.name}: no classes; a dataset needs at least one class")
        if len(set(self.class_names)) != len(self.class_names):
            seen: set[str] = set()
            dup = next(n for n in self.class_names if n in seen or seen.add(n))
            raise DataError(f"{self.name}: class name {dup!r} appears twice; class names must be unique")
        shape, dtype = self.images[0].shape[1:], self.images[0].dtype
        for name, x in zip(self.class_names, self.images, strict=True):
            image = x.dtype == torch.uint8 and x.dim() == 4
            if not (image or (x.dtype in (torch.float32, torch.float64) and x.dim() >= 2)) or x.dtype != dtype:
                raise DataError(f"{self.name}: class {name!r} is {x.dtype} with shape {tuple(x.shape)}; "
                                f"expected uint8 images (n, C, H, W) or float32/float64 examples (n, *shape), "
                                f"the same kind as the first class ({dtype})")
            if x.shape[1:] != shape or (image and x.shape[2] != x.shape[3]):
                raise DataError(f"{self.name}: class {name!r} has examples of shape {tuple(x.shape[1:])}, "
                                f"others {tuple(shape)}; resize every class to the same (square, for images) size")
            if x.shape[0] == 0:
                raise DataError(f"{self.name}: class {name!r} has no examples")

    @property
    def num_classes(self) -> int:
        return len(self.images)

    @property
    def is_image(self) -> bool:
        """uint8 images (to_model_space applies), rather than float examples already in model space."""
        return self.images[0].dtype == torch.uint8

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example: (C, H, W) for images, (C, L) for series."""
        return tuple(int(d) for d in self.images[0].shape[1:])

    @property
    def image_size(self) -> int:
        """The side of an image (for series: the length L)."""
        return int(self.images[0].shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[1])

    @property
    def class_sizes(self) -> list[int]:
        return [int(x.shape[0]) for x in self.images]

    @property
    def min_class_size(self) -> int:
        return min(self.class_sizes)

    def subset(self, indices: Sequence[int]) -> ClassDataset:
        """The classes at ``indices`` (in that order), sharing the image tensors (no copy)."""
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < self.num_classes]
        if bad:
            raise IndexError(f"{self.name}: class indices {bad} out of range 0..{self.num_classes - 1}")
        return ClassDataset(self.name, [self.images[i] for i in idx], [self.class_names[i] for i in idx])

    def __repr__(self) -> str:
        return (f"ClassDataset({self.name!r}, classes={self.num_classes}, "
                f"{'images' if self.is_image else 'examples'}={sum(self.class_sizes)}, shape={self.shape})")


def to_model_space(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 0..255 -> float in [-1, 1] (``x / 127.5 - 1``), any shape."""
    if x.dtype != torch.uint8:
        raise TypeError(f"to_model_space expects uint8 images, got {x.dtype}")
    return x.to(dtype) / 127.5 - 1.0


def as_model_space(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A dataset's examples in model space: uint8 images through ``to_model_space``; float examples (already
    in model space) cast to ``dtype``. Any shape."""
    return to_model_space(x, dtype) if x.dtype == torch.uint8 else x.to(dtype)


def from_model_space(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 0..255 (rounded; values outside [-1, 1] are clamped), any shape."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float images ``(N, C, h, w)`` in [0, 1] to ``(N, C, size, size)``, still in [0, 1].

    Bilinear with antialiasing (``align_corners=False``), so downscaling averages instead of
    aliasing. Images already ``size x size`` are returned unchanged.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise TypeError(f"resize_images expects float (N, C, h, w), got {x.dtype} {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if x.shape[0] == 0:
        return x.new_empty(0, x.shape[1], size, size)
    if x.shape[-2:] == (size, size):
        return x
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp_(0.0, 1.0)  # the triangle filter cannot overshoot; this only guards rounding


def quantize(x: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 by ``round(x * 255)``, any shape."""
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def resize_to_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """The shared path: ``(N, C, h, w)`` float in [0, 1] (or bool, True = 1) -> uint8 ``(N, C, size, size)``.

    ``quantize(resize_images(x, size))``, done in chunks so that a whole Omniglot set at
    105 x 105 never needs a float copy all at once.
    """
    if x.dtype == torch.uint8:
        raise TypeError("resize_to_uint8 expects float images in [0, 1] or bool; divide uint8 by 255 first")
    if x.shape[0] == 0:
        return torch.empty(0, x.shape[1], size, size, dtype=torch.uint8)
    chunks = [quantize(resize_images(c.float() if c.dtype == torch.bool else c, size))
              for c in x.split(_RESIZE_CHUNK)]
    return torch.cat(chunks)


def expand_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Greyscale uint8 ``(N, 1, H, W)`` -> ``(N, channels, H, W)`` (channels 1 or 3; grey is replicated)."""
    if channels == x.shape[1]:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot turn {x.shape[1]} channels into {channels}; data.channels must be 1 or 3")
