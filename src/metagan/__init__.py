"""metagan: few-shot generation with meta-learned GANs.

    >>> import metagan
    >>> run = metagan.train(metagan.get_preset("tiny"), out_dir="runs")
    >>> model = metagan.load(run)
    >>> adapted = model.adapt(support)            # support: (K, C, H, W) in [-1, 1]
    >>> images = adapted.sample(16, torch.Generator().manual_seed(0))
"""
from .adapt import AdaptedGenerator, MetaGAN, adapt, load
from .config import Config, apply_overrides, get_preset
from .errors import CheckpointError, ConfigError, DataError, MetaganError, TrainingDiverged
from .train import train

__version__ = "0.2.0"  # the one place the version is written (pyproject.toml reads it)

__all__ = ["AdaptedGenerator", "MetaGAN", "adapt", "load", "train", "Config", "get_preset", "apply_overrides",
           "MetaganError", "ConfigError", "DataError", "CheckpointError", "TrainingDiverged"]
