"""What the web page does, as plain functions (no Gradio here, so the tests drive them directly).

    >>> models = ModelCache()                                    # the shipped models, loaded on first use
    >>> r = generate(["a.png", "b.png"], "pretrained:omniglot-metasgd", num=16, steps=10, seed=0,
    ...              models=models, out_dir=tmp)                 # doctest: +SKIP
    >>> r.samples[0].shape, r.zip_path.name                      # doctest: +SKIP
    ((28, 28), 'metagan-samples.zip')

Every mistake a visitor can make (no upload, too many or too large files, a file that is not an image, a blank or
inverted drawing, a model not on offer, counts out of range) raises a MetaganError whose message the page shows;
nothing here prints or keeps going.
"""
from __future__ import annotations

import io
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..adapt import MetaGAN, check_sample_memory, check_select, check_support_size, load
from ..checkpoint import FORMAT, PRETRAINED_PREFIX, config_of, pretrained_names
from ..data import files_inverted, from_model_space, is_series, save_grid
from ..errors import ConfigError, DataError

# Limits of one request: the page is for looking at a handful of samples, and a server is shared.
MAX_UPLOADS = 20  # support images; the shipped models were meta-trained with K = 4 or 5
MAX_FILE_MB = 10  # per uploaded file (also Gradio's upload limit, so larger files never reach the disk)
MAX_UPLOAD_PIXELS = 4_000_000  # per image: it is shrunk to the model's 28x28, so more is a mistake
MAX_PAGE_NUM = 64  # samples per request
MAX_PAGE_STEPS = 100  # adaptation steps per request (the shipped models use 2 to 10)
MAX_PAGE_SELECT = 10.0  # select ratio: R x num candidates are generated and scored
MAX_PAGE_SEED = 2**31 - 1
POLARITIES = ("auto", "dark-on-light", "light-on-dark")
ZIP_NAME = "metagan-samples.zip"
# torch.func's transforms (grad, vmap: the inner loop) keep global state, so two adaptations in threads of one
# process corrupt each other ("One of the differentiated Tensors does not require grad", or silently wrong
# samples): requests adapt and sample one at a time; reading, checking and writing run concurrently.
_TORCH_LOCK = threading.Lock()

Progress = Callable[[float, str], None]


class ModelCache:
    """The models the page offers, each loaded once per process (thread-safe): the shipped `pretrained:` models
    and an optional extra checkpoint (a run folder or file given to `metagan serve --checkpoint`)."""

    def __init__(self, extra: str | None = None):
        # the page shows images: the shipped series models (docs/series.md) are for `metagan adapt`, the dialogue
        # model (another format, docs/dialogue.md) for `metagan reply`
        self.names = [PRETRAINED_PREFIX + n for n in pretrained_names(FORMAT)
                      if not is_series(config_of(PRETRAINED_PREFIX + n).data)]
        if extra is not None and extra not in self.names:
            self.names.insert(0, str(extra))
        self.default = str(extra) if extra is not None else _default(self.names)
        self._models: dict[str, MetaGAN] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> MetaGAN:
        """The loaded model `name`; ConfigError for a name the page does not offer (never a path from a request)."""
        if name not in self.names:
            raise ConfigError(f"model {name!r} is not offered here; choose one of {', '.join(self.names)}")
        with self._lock:  # one load per name, even when two requests ask at once
            if name not in self._models:
                self._models[name] = load(name)
            return self._models[name]


def _default(names: list[str]) -> str:
    best = PRETRAINED_PREFIX + "omniglot-cvae"  # the recommended model (README), sampled without adaptation
    return best if best in names else names[0]


@dataclass
class Result:
    support: list[np.ndarray]  # the K supports as the model read them: uint8 (H, W) or (H, W, 3), files' polarity
    samples: list[np.ndarray]  # the `num` samples, the same way
    figures: str  # Markdown: what was generated, in numbers, each defined
    zip_path: Path  # sample-NNNN.png for each sample and grid.png (supports, then samples)


def generate(files: Sequence[str | os.PathLike] | None, model_name: str, num: int, steps: int, seed: int,
             select: float = 1.0, polarity: str = "auto", *, models: ModelCache, out_dir: str | os.PathLike,
             progress: Progress | None = None) -> Result:
    """Adapt `model_name` to the uploaded images and sample `num` images with `seed`.

    files: paths of the uploads (the K supports). Adaptation uses `seed`, sampling `seed + 1` (as `metagan adapt`).
    out_dir: an existing folder of this request; the zip is written there. Raises MetaganError for bad input."""
    progress = progress or (lambda fraction, desc: None)
    paths = check_uploads(files)
    num = _whole(num, "number of samples", 1, MAX_PAGE_NUM)
    steps = _whole(steps, "adaptation steps", 0, MAX_PAGE_STEPS)
    seed = _whole(seed, "seed", 0, MAX_PAGE_SEED)
    check_select(float(select))
    if float(select) > MAX_PAGE_SELECT:
        raise ConfigError(f"select: at most {MAX_PAGE_SELECT:g} here (R x the samples are generated), got {select}")
    if polarity not in POLARITIES:
        raise ConfigError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    progress(0.05, f"loading {model_name}")
    model = models.get(model_name)
    note = check_support_size(len(paths), model.cfg.task.k_shot)
    check_sample_memory(num, float(select), model.system.shape, model.system.problem.z_dim, bytes_per_image=5)
    progress(0.15, "reading the images")
    try:
        support = model.read_support(paths, polarity)
    except DataError as e:  # name the upload as the visitor knows it, not by its temporary path
        raise DataError(_short_paths(str(e), paths)) from None
    progress(0.25, "waiting for the requests before this one")
    with _TORCH_LOCK:
        progress(0.3, f"adapting for {steps} steps")
        adapted = model.adapt(support, steps, torch.Generator().manual_seed(seed))
        progress(0.7, f"sampling {num} images")
        images = from_model_space(adapted.sample(num, torch.Generator().manual_seed(seed + 1), float(select)))
    real = from_model_space(support)
    progress(0.9, "writing the zip")
    invert = files_inverted(model.cfg.data)
    zip_path = write_zip(Path(out_dir) / ZIP_NAME, real, images, invert)
    notes = [n for n in (note, _few_note(len(paths), model.cfg.task.k_shot)) if n]
    return Result(_for_display(real, invert), _for_display(images, invert),
                  figures(real, images, model_name, steps, seed, notes), zip_path)


def check_uploads(files: Sequence[str | os.PathLike] | None) -> list[Path]:
    """The uploads as paths; DataError for none, more than MAX_UPLOADS, a file over MAX_FILE_MB or an image over
    MAX_UPLOAD_PIXELS (read from its header; what is not an image is left to read_support's message)."""
    # Gradio passes paths (older releases: tempfile objects with the path in .name)
    paths = [Path(f if isinstance(f, (str, os.PathLike)) else f.name) for f in (files or [])]
    if not paths:
        raise DataError("upload at least one image of the new class (the shipped models were meta-trained with "
                        "4 or 5)")
    if len(paths) > MAX_UPLOADS:
        raise DataError(f"{len(paths)} files uploaded: this page takes at most {MAX_UPLOADS} support images "
                        "(the shipped models were meta-trained with 4 or 5); choose the most typical ones")
    for p in paths:
        if not p.is_file():
            raise DataError(f"upload {p.name} did not arrive; upload it again")
        size = p.stat().st_size
        if size > MAX_FILE_MB * 2**20:
            raise DataError(f"{p.name} is {size / 2**20:.0f} MB: this page takes files up to {MAX_FILE_MB} MB")
        try:
            with Image.open(p) as img:  # the header only
                w, h = img.size
        except Exception:  # not an image: read_support says so, naming the file
            continue
        if w * h > MAX_UPLOAD_PIXELS:
            raise DataError(f"{p.name} is {w}x{h} = {w * h / 1e6:.0f} megapixels: this page takes images up to "
                            f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels (they are shrunk to a few dozen pixels a "
                            "side); downscale it first")
    return paths


def _whole(value, what: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] from a form value (Gradio's sliders and number boxes may give floats)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a whole number, got {value!r}") from None
    if not v.is_integer() or not lo <= v <= hi:
        raise ConfigError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(v)


def _short_paths(message: str, paths: list[Path]) -> str:
    for p in paths:
        message = message.replace(str(p), p.name)
    return message


def _few_note(k: int, k_shot: int) -> str | None:
    if k < k_shot:
        return (f"{k} support image{'s' if k > 1 else ''}, fewer than the K = {k_shot} this model was meta-trained "
                "with: it adapts, but the samples tell you less about the class")
    return None


def _for_display(images: torch.Tensor, invert: bool) -> list[np.ndarray]:
    """uint8 (N, C, H, W), ink bright -> N arrays in the files' polarity, (H, W) grey or (H, W, 3)."""
    x = (255 - images if invert else images).permute(0, 2, 3, 1).numpy()
    return [a[:, :, 0] if a.shape[2] == 1 else a for a in x]


def write_zip(path: Path, support: torch.Tensor, samples: torch.Tensor, invert: bool) -> Path:
    """sample-NNNN.png per sample and grid.png (the support row, then the samples; save_grid) in one zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i, img in enumerate(samples):
            z.writestr(f"sample-{i:04d}.png", _png(img, invert))
        grid = path.with_name("grid.png")
        save_grid(grid, [support, samples], invert)
        z.write(grid, "grid.png")
        grid.unlink()
    return path


def _png(image: torch.Tensor, invert: bool) -> bytes:
    """uint8 (C, H, W), ink bright -> PNG bytes in the files' polarity (as write_image writes them)."""
    x = (255 - image if invert else image).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    (Image.fromarray(x[:, :, 0], "L") if x.shape[2] == 1 else Image.fromarray(x, "RGB")).save(buf, "PNG")
    return buf.getvalue()


def pixel_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel difference, on a 0..1 scale, between each image of a (N, ...) and each of b (M, ...)."""
    fa, fb = a.flatten(1).float() / 255, b.flatten(1).float() / 255
    return torch.cdist(fa, fb, p=1) / fa.shape[1]  # (N, M)


def _mean_pairwise(x: torch.Tensor) -> float | None:
    if x.shape[0] < 2:
        return None
    d = pixel_distances(x, x)
    return float(d.sum() / (x.shape[0] * (x.shape[0] - 1)))  # the diagonal is 0


def figures(support: torch.Tensor, samples: torch.Tensor, model_name: str, steps: int, seed: int,
            notes: list[str] = ()) -> str:
    """Markdown with the diversity and copy figures of uint8 supports (K, ...) and samples (N, ...), defined."""
    ds, dr = _mean_pairwise(samples), _mean_pairwise(support)
    if ds is None:
        diversity = "needs at least 2 samples"
    elif dr is None or dr == 0:
        diversity = f"samples {ds:.3f} (needs at least 2 different supports for the ratio)"
    else:
        diversity = f"**{ds / dr:.2f}** (samples {ds:.3f} / supports {dr:.3f})"
    copy = float(pixel_distances(samples, support).min(1).values.mean())
    ref = "" if support.shape[0] < 2 else \
        f" (each support to its nearest other support: {float(_nearest_other(support)):.3f})"
    lines = [f"**{samples.shape[0]} samples** of {model_name}, adapted for {steps} steps to "
             f"{support.shape[0]} support image{'s' if support.shape[0] > 1 else ''}, seed {seed}.",
             "",
             f"- Diversity: {diversity}. The mean pairwise pixel distance of the samples over that of the supports "
             "(pixel distance: the mean absolute difference of two images, pixels on a 0..1 scale); near 1, the "
             "samples vary about as much as the supports; near 0, they are all alike.",
             f"- Copy distance: **{copy:.3f}**{ref}. The mean, over samples, of the pixel distance to the nearest "
             "support; near 0, the samples copy the supports.",
             "",
             "Neither figure measures how good the samples look: they are pixel statistics, not a learned metric."]
    lines += [f"\nNote: {n}." for n in notes]
    return "\n".join(lines)


def _nearest_other(x: torch.Tensor) -> torch.Tensor:
    d = pixel_distances(x, x)
    d.fill_diagonal_(float("inf"))
    return d.min(1).values.mean()


__all__ = ["MAX_UPLOADS", "ModelCache", "Result", "check_uploads", "figures", "generate", "pixel_distances"]
