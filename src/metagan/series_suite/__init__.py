"""The time-series benchmark suite (`metagan benchmark --suite pigcvp`): classic series augmentation, the series
feature network, the discriminative and predictive scores, and the suite's methods and report."""
from .augment import augmenter, classic_augment
from .scores import discriminative_counts, predictive_counts, series_scores
from .suite import PIGCVP

__all__ = ["PIGCVP", "augmenter", "classic_augment", "discriminative_counts", "predictive_counts", "series_scores"]
