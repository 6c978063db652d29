"""Few-shot generators for the evaluation: meta-trained GANs and the baselines they are compared with.

Each is a function `gen(support (K, C, H, W), n, generator) -> (n, C, H, W)` in model space.

- metagan_generator(model, steps): adapt a checkpoint (meta-learned, jointly pre-trained, or freshly
  initialised = a GAN trained from scratch on the K shots) for `steps` inner steps, then sample.
- affine_augmenter(): classic augmentation, random affine transforms of the support images
  (random_affine: the transform itself, also applied online by the low-data classifier).
- support_copier(), held_out_real(): the two reference rows, a copier and real images of the class.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .adapt import MetaGAN
from .config import Config
from .system import build_system, init_meta


def metagan_generator(model: MetaGAN, steps: int | None, use_ema: bool = True, select: float = 1.0,
                      keep_generator: bool = False):
    """steps None: the model's own; select: AdaptedGenerator.sample's; keep_generator: MetaGAN.adapt's."""
    def gen(support: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return model.adapt(support, steps, generator, use_ema, keep_generator).sample(n, generator, select)
    return gen


def scratch_model(cfg: Config, seed: int = 0) -> MetaGAN:
    """Freshly initialised networks: adapting them on K shots is 'a GAN trained from scratch'."""
    system = build_system(cfg)
    return MetaGAN(system, init_meta(system, seed), {})


def random_affine(x: Tensor, generator: torch.Generator, max_degrees: float = 15.0, max_translate: float = 0.1,
                  scale=(0.9, 1.1), max_shear: float = 10.0, mode: str = "bicubic") -> Tensor:
    """Each image of x (N, C, H, W), model space, under its own random rotation, translation, scale and shear,
    read between pixels with `mode`: bicubic (clamped to the images' range; the protocol's since version 4) or
    bilinear (which blurs strokes)."""
    n = len(x)

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    x = x.float()
    rot, shear = u(-max_degrees, max_degrees) * math.pi / 180, u(-max_shear, max_shear) * math.pi / 180
    s, tx, ty = u(*scale), u(-max_translate, max_translate) * 2, u(-max_translate, max_translate) * 2
    # inverse map for grid_sample: output pixel -> input location (rotation then shear, / scale)
    a = torch.stack([torch.cos(rot), -torch.sin(rot) + torch.tan(shear) * torch.cos(rot), tx], 1)
    b = torch.stack([torch.sin(rot), torch.cos(rot) + torch.tan(shear) * torch.sin(rot), ty], 1)
    theta = (torch.stack([a, b], 1) / torch.stack([s, s, torch.ones_like(s)], 1)[:, None, :]).float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # background is -1 in model space: shift so zero padding means background
    out = F.grid_sample(x + 1, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out - 1 if mode == "bilinear" else out.clamp(0, 2) - 1


def affine_augmenter(max_degrees: float = 15.0, max_translate: float = 0.1, scale=(0.9, 1.1),
                     max_shear: float = 10.0):
    """Random rotation, translation, scale and shear (random_affine) of randomly chosen support images."""
    def gen(support: Tensor, n: int, generator: torch.Generator) -> Tensor:
        pick = torch.randint(len(support), (n,), generator=generator)
        return random_affine(support[pick], generator, max_degrees, max_translate, scale, max_shear)
    return gen


def support_copier():
    """Reference row `support-copy`: the K support images themselves, cycled to n (a generator that copies)."""
    def gen(support: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return support[torch.arange(n) % len(support)].float()
    gen.reference = True  # evaluate: a reference row, not a method (no low-data classifier)
    return gen


def held_out_real():
    """Reference row `real`: the class's held-out real images that are neither its supports nor the metrics'
    reference images (evaluate's "real pool"), all of them and each once, whatever n: repeated images would shrink
    the k-NN radii behind recall and the pairwise distances behind diversity. `needs_pool` tells
    evaluate.generate_all to pass the pool (model space) as a fourth argument."""
    def gen(support: Tensor, n: int, generator: torch.Generator, pool: Tensor) -> Tensor:
        return pool.float()
    gen.needs_pool = True
    gen.reference = True
    return gen
