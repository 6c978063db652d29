"""Reading and writing single image files, and PNG sample grids.

Polarity: inside metagan ink is bright (255). Files with dark strokes on light paper (Omniglot's
PNGs, scanned handwriting) are read with ``invert=True``, and written back with ``invert=True``
to look like the originals.

Example:
    >>> import torch, tempfile, os
    >>> x = torch.zeros(1, 8, 8, dtype=torch.uint8); x[:, 2:6, 3] = 255   # a bright stroke
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> write_image(path, x, invert=True)                                  # black stroke on white
    >>> bool((read_image(path, 8, channels=1, invert=True) == x).all())
    True
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from .base import resize_to_uint8

# Modes whose samples are not 8-bit: I;16* are 16-bit; I (32-bit int) holds 16-bit PNG data in
# practice; F is assumed to be in [0, 1].
_WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0,
               "F": 1.0}
_GRID_GREY = 128  # separator colour in sample grids: mid-grey, distinct from both ink and paper
GRID_COLUMNS = 16  # images per line of a sample grid; longer rows wrap
MAX_PIXELS = 50_000_000  # one image file; inputs are shrunk to a few dozen pixels, so more is a mistake or a bomb
# read_support_image: what cannot be a drawing of a class
MIN_SIDE = 4  # pixels a side
MIN_CONTRAST = 0.1  # of the value range, between the darkest and brightest pixel
MIN_OPAQUE = 0.01  # share of pixels not fully transparent
MAX_INK_SHARE = 0.5  # ink on more of the image than this: it looks inverted (Omniglot's ink < 0.2, digits' < 0.4)


def read_image(path: str | os.PathLike, size: int, channels: int = 1, invert: bool = False) -> torch.Tensor:
    """Read any image file PIL can decode -> uint8 ``(channels, size, size)``.

    Args:
        path: the file; any size up to ``MAX_PIXELS`` and any colour mode (1, L, LA, P, RGB, RGBA,
            I;16, ...). Animated files give their first frame.
        size: output height and width (non-square images are stretched, not cropped).
        channels: 1 (grey, ITU-R 601 luma) or 3 (RGB; grey files are replicated).
        invert: True for dark strokes on light paper, so that ink comes out bright.

    Photos are turned upright by their EXIF orientation, and transparent pixels are flattened
    onto white paper. The result goes through the same ``resize_to_uint8`` as every other loader.

    Raises:
        DataError: the file is missing, not an image, truncated or corrupt, or over ``MAX_PIXELS``
            (names the file).
    """
    x, _ = _read_float(path, channels)
    if invert:
        x = 1.0 - x
    return resize_to_uint8(x[None], size)[0]


def read_support_image(path: str | os.PathLike, size: int, channels: int = 1, invert: bool = False,
                       check_polarity: bool = True) -> torch.Tensor:
    """``read_image`` for the K examples a model adapts to, refusing what cannot be a drawing of a class.

    On top of ``read_image``'s checks it raises DataError, naming the file, for an image smaller than
    ``MIN_SIDE`` pixels a side, a blank one (pixel values within ``MIN_CONTRAST`` of each other), a fully or
    nearly fully transparent one (under ``MIN_OPAQUE`` of its pixels opaque), and, with ``check_polarity``,
    one that looks inverted: once read with ``invert`` (ink bright), more than ``MAX_INK_SHARE`` of its
    pixels are ink, where Omniglot's and the digits' ink covers under a fifth and under two fifths.
    """
    x, opaque = _read_float(path, channels)
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise DataError(f"support image {path} is {w}x{h} pixels: too small to show a drawing; use images of "
                        f"at least {MIN_SIDE}x{MIN_SIDE} (they are resized to {size}x{size})")
    if opaque < MIN_OPAQUE:
        raise DataError(f"support image {path} is {'fully' if opaque == 0 else 'nearly fully'} transparent "
                        f"({opaque:.1%} of its pixels opaque): there is no drawing to read; export it with "
                        "opaque strokes")
    contrast = float(x.max() - x.min())
    if contrast < MIN_CONTRAST:
        raise DataError(f"support image {path} is blank: all its pixels have about the same value (contrast "
                        f"{contrast:.0%} of the range, under {MIN_CONTRAST:.0%}); use an image of the drawing")
    img = resize_to_uint8((1.0 - x if invert else x)[None], size)[0]
    if check_polarity:
        share = ink_share(img)
        if share > MAX_INK_SHARE:
            seen, other = ("dark ink on light paper", "light ink on a dark background") if invert else \
                ("light ink on a dark background", "dark ink on light paper")
            flag = {True: "dark-on-light", False: "light-on-dark"}
            raise DataError(f"support image {path} seems to have the opposite polarity to the model's training "
                            f"images: read as {seen}, as the model expects, {share:.0%} of its pixels are ink, "
                            f"where the training images' ink covers well under half. If it has {other}, pass "
                            f"--polarity {flag[not invert]} (polarity={flag[not invert]!r}); if it really is "
                            f"{seen} with ink on most of it, pass --polarity {flag[invert]}")
    return img


def ink_share(image: torch.Tensor) -> float:
    """Share of the pixels of uint8 ``(C, H, W)`` (ink bright) nearer its brightest value than its darkest."""
    x = image.float().mean(0)
    return float((x > (x.min() + x.max()) / 2).float().mean())


def _read_float(path: str | os.PathLike, channels: int) -> tuple[torch.Tensor, float]:
    """The file -> (float ``(channels, H, W)`` in [0, 1] (upright, alpha flattened onto white), share of
    its pixels that are not fully transparent)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file {path} does not exist; check the path")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit (and raises at twice it); both mean "too large" here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # reads the header only: the size is known before decoding
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise DataError(f"image {path} is {w}x{h} = {w * h / 1e6:.0f} megapixels, over metagan's "
                                    f"limit of {MAX_PIXELS / 1e6:.0f} megapixels for one image (images are "
                                    "shrunk to a few dozen pixels a side; one this large is a mistake or a "
                                    "decompression bomb): downscale it first")
                img.load()  # decode now, so truncated files fail here rather than later
                img = ImageOps.exif_transpose(img)  # upright, as viewers show it
                return _to_float(img, channels), _opaque_share(img)
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DataError(f"image {path} is over metagan's limit of {MAX_PIXELS / 1e6:.0f} megapixels for one "
                        f"image ({e}): downscale it first") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise DataError(
            f"cannot read image {path} ({type(e).__name__}: {e}): the file is not an image, or it is "
            "truncated or corrupt. Replace it with a valid PNG/JPEG/BMP/GIF/WebP file or delete it.") from e


def _to_float(img: Image.Image, channels: int) -> torch.Tensor:
    """PIL image -> float ``(channels, H, W)`` in [0, 1], alpha flattened onto white."""
    if img.mode in _WIDE_MODES:
        a = np.asarray(img, dtype=np.float32) / _WIDE_MODES[img.mode]
        x = torch.from_numpy(np.clip(a, 0.0, 1.0))[None]
        return x.expand(channels, -1, -1).contiguous()
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    a = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(a)
    return x[None] if channels == 1 else x.permute(2, 0, 1).contiguous()



def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _opaque_share(img: Image.Image) -> float:
    """Share of the pixels whose alpha is above 0 (1 for images without transparency)."""
    if img.mode in _WIDE_MODES or not _has_alpha(img):
        return 1.0
    return float((np.asarray(img.convert("RGBA").getchannel("A")) > 0).mean())


def write_image(path: str | os.PathLike, image: torch.Tensor, invert: bool = False) -> None:
    """Write uint8 ``(C, H, W)`` (C = 1 or 3, ink bright) to ``path``; the format follows the suffix.

    ``invert=True`` writes ink dark on white paper (Omniglot's look). Parent folders are created.
    """
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise TypeError(f"write_image expects uint8 (C, H, W) with C = 1 or 3, got {image.dtype} "
                        f"{tuple(image.shape)}; convert model outputs with from_model_space first")
    x = 255 - image if invert else image
    arr = x.detach().cpu().permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0], "L") if x.shape[0] == 1 else Image.fromarray(arr, "RGB")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path, format=None if path.suffix else "PNG")


def save_grid(path: str | os.PathLike, rows: Sequence[torch.Tensor], invert: bool = False, pad: int = 2,
              scale: int = 1, columns: int = GRID_COLUMNS, gap: int | None = None) -> torch.Tensor:
    """Write a PNG grid, one logical row per entry of ``rows``, and return it as uint8 ``(C, H', W')``.

    Every image grid metagan writes (``metagan adapt``'s grid.png, the training run's samples-*.png, the demo's
    and the benchmark's sample grids) comes from here, so they share one layout.

    Args:
        rows: uint8 tensors ``(N_r, C, H, W)``; rows may differ in N_r (short rows are left grey)
            but share C, H and W.
        invert: as in ``write_image`` (Omniglot: True, to look like the original drawings).
        pad: width of the mid-grey separator between and around images.
        scale: integer nearest-neighbour enlargement of the written file (small images stay visible).
        columns: at most this many images per line; a longer row continues on the next lines (``pad`` apart),
            so 64 samples make 4 lines of 16, not one line of 64.
        gap: separator between logical rows (default ``3 * pad``), wider than ``pad`` so that a wrapped row
            still reads as one (e.g. the support images, then the samples on several lines).

    The grid is ``min(columns, longest row)`` images wide; a row of at most ``columns`` images takes one line.
    """
    rows = list(rows)
    shapes = {tuple(r.shape[1:]) for r in rows if r.shape[0] > 0}
    if not rows or not shapes:
        raise ValueError("save_grid needs at least one row with at least one image")
    if len(shapes) != 1 or any(r.dtype != torch.uint8 or r.dim() != 4 for r in rows):
        raise TypeError(f"save_grid rows must be uint8 (N, C, H, W) of one image shape, got shapes "
                        f"{sorted(shapes)}; convert model outputs with from_model_space first")
    gap = 3 * pad if gap is None else gap
    if columns < 1 or pad < 0 or gap < 0:
        raise ValueError(f"save_grid needs columns >= 1, pad >= 0 and gap >= 0, got {columns}, {pad} and {gap}")
    c, h, w = shapes.pop()
    ncols = min(columns, max(r.shape[0] for r in rows))
    lines = [max(1, -(-r.shape[0] // columns)) for r in rows]  # lines each row takes (an empty row: one, grey)
    height = pad + sum(lines) * (h + pad) + (len(rows) - 1) * (gap - pad)
    grid = torch.full((c, height, pad + ncols * (w + pad)), _GRID_GREY, dtype=torch.uint8)
    top0 = pad  # top of the row's first line
    for row, n_lines in zip(rows, lines):
        for j, img in enumerate(row.detach().cpu()):
            top, left = top0 + (j // columns) * (h + pad), pad + (j % columns) * (w + pad)
            grid[:, top:top + h, left:left + w] = 255 - img if invert else img
        top0 += n_lines * (h + pad) + gap - pad
    out = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2) if scale > 1 else grid
    write_image(path, out, invert=False)
    return grid
