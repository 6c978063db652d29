"""Configuration of the ratings domain: its own data, task, model and loss sections beside metagan's MetaConfig and
TrainConfig (the meta-learner and the outer loop are shared), named presets and dotted overrides.

    >>> cfg = apply_overrides(get_preset("movielens-gan-fomaml"), ["data.clicks=true", "train.steps=100"])
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..config import MetaConfig, TrainConfig, _coerce
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
class RatingsConfig:
    data: RatingsData = field(default_factory=RatingsData)
    task: RatingsTask = field(default_factory=RatingsTask)
    model: RatingsModel = field(default_factory=RatingsModel)
    loss: RatingsLoss = field(default_factory=RatingsLoss)
    meta: MetaConfig = field(default_factory=lambda: MetaConfig(vectorize="vmap"))
    # 150 outer steps, validated every 25 (the suite's budget); no EMA: adaptation starts from the raw meta-parameters
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=150, ema=0.0, log_every=25,
                                                                   sample_every=0, ckpt_every=25))

    domain = "ratings"

    def to_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


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


def from_dict(d: dict[str, Any], base: RatingsConfig | None = None) -> RatingsConfig:
    """A RatingsConfig from a nested dict over `base` (defaults); unknown sections or keys raise ConfigError."""
    base = base or RatingsConfig()
    if not isinstance(d, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(d).__name__}")
    parts = {}
    for section, values in d.items():
        if section == "domain":
            continue
        if section not in {f.name for f in fields(RatingsConfig)}:
            raise ConfigError(f"unknown config section {section!r}; sections are: "
                              f"{', '.join(f.name for f in fields(RatingsConfig))}")
        sub = getattr(base, section)
        hints = typing.get_type_hints(type(sub))
        if not isinstance(values or {}, dict):
            raise ConfigError(f"config section {section!r} must be a mapping, got {values!r:.80}")
        unknown = set(values or {}) - set(hints)
        if unknown:
            raise ConfigError(f"unknown config key {section}.{sorted(unknown)[0]}; keys of {section} are: "
                              f"{', '.join(hints)}")
        parts[section] = replace(sub, **{k: _coerce(v, hints[k], f"{section}.{k}") for k, v in (values or {}).items()})
    cfg = replace(base, **parts)
    validate(cfg)
    return cfg


def apply_overrides(cfg: RatingsConfig, overrides) -> RatingsConfig:
    nested: dict[str, dict[str, Any]] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. meta.inner_steps=5)")
        section, sub = key.strip().split(".", 1)
        nested.setdefault(section, {})[sub] = value
    return from_dict(nested, cfg)


def get_preset(name: str) -> RatingsConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown ratings preset {name!r}; presets are: {', '.join(sorted(PRESETS))}")
    return from_dict(PRESETS[name])


def config_from_json(text: str) -> RatingsConfig:
    d = json.loads(text)
    if not isinstance(d, dict) or d.get("domain") != RatingsConfig.domain:
        raise ConfigError("not a ratings config (no \"domain\": \"ratings\")")
    return from_dict(d)


def validate(cfg: RatingsConfig) -> None:
    d = cfg.to_dict()
    for key, allowed in CHOICES.items():
        section, sub = key.split(".")
        if d[section][sub] not in allowed:
            raise ConfigError(f"{key}={d[section][sub]!r} is not one of: {', '.join(allowed)}")
    for key in ("task.meta_batch", "task.fakes", "model.z_dim", "model.hidden", "model.embed", "meta.inner_steps",
                "train.steps"):
        section, sub = key.split(".")
        if not 1 <= d[section][sub] <= 100_000:
            raise ConfigError(f"{key} must be between 1 and 100000, got {d[section][sub]}")
    if min(cfg.loss.rec, cfg.loss.outer_adv, cfg.loss.inner_adv) < 0:
        raise ConfigError("loss.rec, loss.outer_adv and loss.inner_adv must be non-negative")
    if cfg.model.kind == "melu" and cfg.meta.learner == "reptile":
        raise ConfigError("MeLU's embeddings are not adapted in the inner loop, so Reptile (the inner loop's "
                          "displacement) would never train them: use maml, fomaml, metasgd or joint")
    if cfg.meta.n_d + cfg.meta.n_g == 0:
        raise ConfigError("meta.n_d and meta.n_g are both 0: the inner loop would do nothing")
