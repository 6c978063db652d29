"""Generator and discriminator families. Plain nn.Modules without running statistics, so that
`torch.func.functional_call` over a parameter dict and `vmap` over tasks both work.

    >>> from metagan.config import get_preset
    >>> g, d = build_models(get_preset("tiny").model, shape=(1, 8, 8))
"""
from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .attn1d import HEADS, PATCH, AttnDiscriminator, AttnGenerator, PairAttnGenerator
from .conv import ConvDiscriminator, ConvGenerator, PairGenerator
from .conv1d import Conv1dDiscriminator, Conv1dGenerator, PairSeriesGenerator
from .mlp import MLPDiscriminator, MLPGenerator

__all__ = ["build_models", "ConvGenerator", "PairGenerator", "ConvDiscriminator", "MLPGenerator", "MLPDiscriminator",
           "Conv1dGenerator", "Conv1dDiscriminator", "PairSeriesGenerator", "AttnGenerator", "AttnDiscriminator",
           "PairAttnGenerator"]


def build_models(cfg: ModelConfig, shape: tuple[int, ...], posterior: bool = False) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for samples of `shape`: (C, H, W) images, (C, L) series or (D,) vectors."""
    if cfg.kind == "conv":
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(f"model.kind=conv needs square (C, H, W) images, got shape {shape}; "
                              "use model.kind=mlp for vectors")
        c, s, _ = shape
        if cfg.condition == "image":
            return (PairGenerator(cfg.z_dim, c, s, cfg.g_width, cfg.norm, cfg.g_affine, cfg.resample, posterior),
                    ConvDiscriminator(c, s, cfg.d_width, paired=True))
        return ConvGenerator(cfg.z_dim, c, s, cfg.g_width, cfg.norm), ConvDiscriminator(c, s, cfg.d_width)
    if cfg.kind == "conv1d":
        if len(shape) != 2 or shape[1] % 4:
            raise ConfigError(f"model.kind=conv1d needs series (C, L) with L a multiple of 4, got shape {shape}")
        c, n = shape
        if cfg.condition == "series":
            return (PairSeriesGenerator(cfg.z_dim, c, n, cfg.g_width, cfg.norm),
                    Conv1dDiscriminator(c, n, cfg.d_width, paired=True))
        if cfg.condition != "none":
            raise ConfigError(f"model.condition={cfg.condition} is for images; series take none or series")
        return Conv1dGenerator(cfg.z_dim, c, n, cfg.g_width, cfg.norm), Conv1dDiscriminator(c, n, cfg.d_width)
    if cfg.kind == "mlp":
        if cfg.condition != "none":
            raise ConfigError(f"model.condition={cfg.condition} needs model.kind=conv")
        return MLPGenerator(cfg.z_dim, shape, cfg.hidden), MLPDiscriminator(shape, cfg.hidden)
    if cfg.kind == "attn1d":
        return _attn1d(cfg, shape)
    raise ConfigError(f"model.kind={cfg.kind!r} is not one of: conv, mlp, conv1d, attn1d")


def _attn1d(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 2 or shape[1] % PATCH:
        raise ConfigError(f"model.kind=attn1d needs series (C, L) with L a multiple of {PATCH}, got shape {shape}")
    if cfg.g_width % HEADS or cfg.d_width % HEADS:
        raise ConfigError(f"model.kind=attn1d splits its width over {HEADS} attention heads: model.g_width and "
                          f"model.d_width must be multiples of {HEADS}, got {cfg.g_width} and {cfg.d_width}")
    c, n = shape
    if cfg.condition == "series":
        return PairAttnGenerator(cfg.z_dim, c, n, cfg.g_width), AttnDiscriminator(c, n, cfg.d_width, paired=True)
    if cfg.condition != "none":
        raise ConfigError(f"model.condition={cfg.condition} is for images; series take none or series")
    return AttnGenerator(cfg.z_dim, c, n, cfg.g_width), AttnDiscriminator(c, n, cfg.d_width)
