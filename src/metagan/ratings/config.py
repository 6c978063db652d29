"""Configuration of the ratings domain: its own data, task, model and loss sections beside metagan's MetaConfig and
TrainConfig (the meta-learner and the outer loop are shared), named presets and dotted overrides.

    >>> cfg = apply_overrides(get_preset("movielens-gan-fomaml"), ["data.clicks=true", "train.steps=100"])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import MetaConfig, TrainConfig
from ..config_loader import ConfigLoader, Sections, check_choices, check_ranges
from ..errors import ConfigError
from .tasks import Protocol


@dataclass(frozen=True)
class RatingsData:
    source: str = "movielens-100k"  # movielens-100k (RecBole's copy) | a GroupLens zip | a folder | a file
    order: str = "time"             # time: query = each user's 10 latest interactions | random (RecBole-MetaRec)
    clicks: bool = False            # the clicks setting: label = rating >= 4; else the rating scaled to [0, 1]
    split_seed: int = 0             # the users' 8:1:1 split and each user's query draw
    resample: bool = True           # meta-training redraws each user's query at random (evaluation never does)

    def protocol(self) -> Protocol:
        return Protocol(order=self.order, clicks=self.clicks)


@dataclass(frozen=True)
class RatingsTask:
    meta_batch: int = 16            # users per outer step
    fakes: int = 4                  # gan: generated vectors per inner discriminator step and per outer loss


@dataclass(frozen=True)
class RatingsModel:
    kind: str = "gan"               # gan (CFGAN-style G and D over item vectors) | melu (MeLU's estimator)
    z_dim: int = 8                  # gan: latent size (scores read z = 0, the latent's mean)
    hidden: int = 64                # hidden width (gan: G and D; melu: the decision layers)
    embed: int = 16                 # melu: embedding size of each feature
    item_prior: bool = True         # gan: G's item biases start at the logits of the items' mean training labels
    adapt: str = "head"             # gan: what the inner loop adapts: head (G's mix, item biases; D's mid, logit) | all


@dataclass(frozen=True)
class RatingsLoss:
    kind: str = "ns"                # gan: ns | hinge
    rec: float = 1.0                # weight of G's error on the known labels (support inside, query outside)
    outer_adv: float = 0.1          # gan: weight of G's adversarial query loss
    inner_adv: float = 1.0          # gan: weight of G's adversarial support loss in the inner loop


@dataclass(frozen=True)
class RatingsConfig(Sections):
    data: RatingsData = field(default_factory=RatingsData)
    task: RatingsTask = field(default_factory=RatingsTask)
    model: RatingsModel = field(default_factory=RatingsModel)
    loss: RatingsLoss = field(default_factory=RatingsLoss)
    meta: MetaConfig = field(default_factory=lambda: MetaConfig(vectorize="vmap"))
    # 150 outer steps, validated every 25 (the suite's budget); no EMA: adaptation starts from the raw meta-parameters
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=150, ema=0.0, log_every=25,
                                                                   sample_every=0, ckpt_every=25))

    domain = "ratings"


# 3 inner steps of SGD on the head; outer Adam at 3e-3 (1e-3: valid nDCG@5 no better after 150 steps, 0.582 / 0.582)
_GAN = {"meta": {"inner_steps": 3, "inner_lr_g": 1.0, "inner_lr_d": 0.1, "outer_lr_g": 3e-3, "outer_lr_d": 3e-3}}

PRESETS: dict[str, dict[str, Any]] = {
    # metagan's meta-learned conditional GAN, one preset per meta-learner
    "movielens-gan-maml": {**_GAN, "meta": {**_GAN["meta"], "learner": "maml"}},
    "movielens-gan-fomaml": {**_GAN, "meta": {**_GAN["meta"], "learner": "fomaml"}},
    "movielens-gan-reptile": {**_GAN, "meta": {**_GAN["meta"], "learner": "reptile", "outer_optimizer": "sgd",
                                               "outer_lr_g": 1.0, "outer_lr_d": 1.0}},
    "movielens-gan-metasgd": {**_GAN, "meta": {**_GAN["meta"], "learner": "metasgd", "first_order": True,
                                               "rates": "tensor", "clamp_rates": True, "outer_lr_rates": 1e-2}},
    # MeLU: its MLP, MAML on the decision layers only
    "movielens-melu": {"model": {"kind": "melu", "hidden": 64},
                       "meta": {"learner": "maml", "inner_steps": 3, "inner_lr_g": 0.5, "outer_lr_g": 1e-3,
                                "outer_lr_d": 1e-3}},
    # seconds: tests
    "ratings-tiny": {"task": {"meta_batch": 4, "fakes": 2}, "model": {"z_dim": 2, "hidden": 8, "embed": 4},
                     "meta": {"learner": "fomaml", "inner_steps": 1},
                     "train": {"steps": 3, "ckpt_every": 2, "log_every": 1}},
}

CHOICES = {"data.order": ("time", "random"), "model.kind": ("gan", "melu"), "model.adapt": ("head", "all"),
           "loss.kind": ("ns", "hinge"),
           "meta.learner": ("maml", "fomaml", "reptile", "metasgd", "joint"), "meta.outer_optimizer": ("adam", "sgd"),
           "meta.vectorize": ("vmap", "loop"), "meta.rates": ("element", "tensor")}


def validate(cfg: RatingsConfig) -> None:
    d = cfg.to_dict()
    check_choices(d, CHOICES)
    check_ranges(d, dict.fromkeys(("task.meta_batch", "task.fakes", "model.z_dim", "model.hidden", "model.embed",
                                   "meta.inner_steps", "train.steps"), (1, 100_000)))
    if min(cfg.loss.rec, cfg.loss.outer_adv, cfg.loss.inner_adv) < 0:
        raise ConfigError("loss.rec, loss.outer_adv and loss.inner_adv must be non-negative")
    if cfg.model.kind == "melu" and cfg.meta.learner == "reptile":
        raise ConfigError("MeLU's embeddings are not adapted in the inner loop, so Reptile (the inner loop's "
                          "displacement) would never train them: use maml, fomaml, metasgd or joint")
    if cfg.meta.n_d + cfg.meta.n_g == 0:
        raise ConfigError("meta.n_d and meta.n_g are both 0: the inner loop would do nothing")


# from_dict, apply_overrides, get_preset and config_from_json (which refuses a config of another domain), with the
# errors config_loader.ConfigLoader describes
LOADER = ConfigLoader(RatingsConfig, PRESETS, validate, preset_noun="ratings preset")
from_dict, apply_overrides, get_preset, config_from_json = (LOADER.from_dict, LOADER.apply_overrides,
                                                            LOADER.get_preset, LOADER.from_json)
