"""Evaluation metrics in the space of a feature network trained here on Omniglot background classes."""
from .distribution import frechet_distance, kernel_distance, prdc
from .features import Conv4, few_shot_accuracy, load_feature_net
from .fewshot import class_fidelity, copy_ratio, diversity

__all__ = ["frechet_distance", "kernel_distance", "prdc", "Conv4", "few_shot_accuracy", "load_feature_net",
           "class_fidelity", "copy_ratio", "diversity"]
