"""Configuration of the dialogue domain: its data, task, model and loss sections beside metagan's MetaConfig and
TrainConfig (the meta-learners and the outer step are shared), named presets and dotted overrides.

    >>> cfg = apply_overrides(get_preset("dialogue-gan-fomaml"), ["train.steps=100", "meta.inner_steps=2"])
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..config import MetaConfig, TrainConfig, _coerce
from ..errors import ConfigError


@dataclass(frozen=True)
class DialogueData:
    source: str = "chatterbot"      # chatterbot (the installed corpus) | a folder of language folders of YAML files
    min_exchanges: int = 20         # topics with fewer exchanges are left out (10 support + 10 query/classifier)
    prompt_len: int = 32            # bytes of a prompt the model reads (longer prompts are cut)
    reply_len: int = 32             # bytes of a reply, EOS included (longer replies are cut; median reply: 47)
    split_seed: int = 0             # the topics' train / validation / evaluation split


@dataclass(frozen=True)
class DialogueTask:
    meta_batch: int = 4             # topics per outer step
    k_shot: int = 5                 # support exchanges of a training task
    query: int = 5                  # query exchanges of a training task


@dataclass(frozen=True)
class DialogueModel:
    embed: int = 16                 # byte embedding size (G and D)
    hidden: int = 64                # GRU state and encoder width of G; D's width
    z_dim: int = 16                 # latent that enters G's initial state (likelihoods read z = 0)
    tau: float = 1.0                # Gumbel-softmax temperature of G's relaxed samples (training)
    temperature: float = 0.7        # sampling temperature of generated replies (evaluation, `metagan reply`)
    eos_grad: bool = False          # G's adversarial gradient may move the end of a reply (False: only the likelihood)


@dataclass(frozen=True)
class DialogueLoss:
    kind: str = "ns"                # ns (non-saturating) | hinge
    ml: float = 1.0                 # weight of G's teacher-forced cross-entropy on real replies (fluency)
    inner_adv: float = 0.1          # weight of G's adversarial loss in the inner loop (0 and meta.n_d=0: a plain LM)
    outer_adv: float = 0.1          # weight of G's adversarial loss on the query


@dataclass(frozen=True)
class DialogueConfig:
    data: DialogueData = field(default_factory=DialogueData)
    task: DialogueTask = field(default_factory=DialogueTask)
    model: DialogueModel = field(default_factory=DialogueModel)
    loss: DialogueLoss = field(default_factory=DialogueLoss)
    meta: MetaConfig = field(default_factory=lambda: MetaConfig(vectorize="vmap"))
    # no EMA: adaptation starts from the raw meta-parameters, as in the ratings domain
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=200, ema=0.0, log_every=10,
                                                                   sample_every=0, ckpt_every=50))

    domain = "dialogue"

    def to_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# 2 inner SGD steps on every parameter; outer Adam at 5e-3 (beta1 0.9: the ML term dominates, as in LM training).
# Sizes and steps are set so that a model meta-trains in minutes on one CPU core.
_META = {"inner_steps": 2, "inner_lr_g": 0.3, "inner_lr_d": 0.1, "outer_lr_g": 5e-3, "outer_lr_d": 5e-3,
         "beta1": 0.9}

# The meta-learners start from a dialogue-joint run (--set train.init_from=RUN; the suite does this per seed) and
# meta-train 200 steps more. Chosen on the validation topics (first-order MAML, 150 steps; docs/dialogue.md "What
# was tried"): from random weights the GAN collapsed to empty or one-byte replies (86%); from a joint *GAN* it still
# collapsed (3 seeds: 86-100% empty or one-byte), from a likelihood-only joint model it did not (3 seeds, adversarial
# weight 0.02: 0-0.2%, topic fidelity 0.37-0.41); weight 0.3 drifts (validation NLL rises after step 50).
_GAN_LOSS = {"inner_adv": 0.02, "outer_adv": 0.02}

PRESETS: dict[str, dict[str, Any]] = {
    # metagan's meta-learned reply GAN, one preset per meta-learner (maml, reptile: the fomaml choices, not tuned)
    "dialogue-gan-maml": {"loss": _GAN_LOSS, "meta": {**_META, "learner": "maml"}},
    "dialogue-gan-fomaml": {"loss": _GAN_LOSS, "meta": {**_META, "learner": "fomaml"}},
    "dialogue-gan-reptile": {"loss": _GAN_LOSS, "meta": {**_META, "learner": "reptile", "outer_optimizer": "sgd",
                                                         "outer_lr_g": 1.0, "outer_lr_d": 1.0}},
    # clamp_rates: a negative learned rate would ascend its inner loss
    "dialogue-gan-metasgd": {"loss": _GAN_LOSS, "meta": {**_META, "learner": "metasgd", "first_order": True,
                                                         "rates": "tensor", "clamp_rates": True,
                                                         "outer_lr_rates": 1e-2}},
    # the same generator trained jointly on all training topics by likelihood alone (no inner loop; SeqGAN-style
    # pre-training: trained adversarially it collapsed to empty replies): the no-adaptation and fine-tuning
    # baselines and the meta-learners' warm start. 400 steps: validation NLL still falling at 300 (2.55-2.6)
    "dialogue-joint": {"loss": {"inner_adv": 0.0, "outer_adv": 0.0}, "meta": {**_META, "learner": "joint"},
                       "train": {"steps": 400}},
    # PAML-style: the same generator as a plain language model (ML loss only, no discriminator), first-order MAML,
    # from the same warm start
    "dialogue-lm-fomaml": {"loss": {"inner_adv": 0.0, "outer_adv": 0.0},
                           "meta": {**_META, "learner": "fomaml", "n_d": 0}},
    # seconds: tests
    "dialogue-tiny": {"data": {"min_exchanges": 6, "prompt_len": 8, "reply_len": 8},
                      "task": {"meta_batch": 2, "k_shot": 2, "query": 2},
                      "model": {"embed": 4, "hidden": 8, "z_dim": 2},
                      "meta": {**_META, "learner": "fomaml", "inner_steps": 1},
                      "train": {"steps": 4, "ckpt_every": 2, "log_every": 1}},
}

CHOICES = {"loss.kind": ("ns", "hinge"), "meta.learner": ("maml", "fomaml", "reptile", "metasgd", "joint"),
           "meta.outer_optimizer": ("adam", "sgd"), "meta.vectorize": ("vmap", "loop"),
           "meta.rates": ("element", "tensor")}


def from_dict(d: dict[str, Any], base: DialogueConfig | None = None) -> DialogueConfig:
    """A DialogueConfig from a nested dict over `base` (defaults); unknown sections or keys raise ConfigError."""
    base = base or DialogueConfig()
    if not isinstance(d, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(d).__name__}")
    names = [f.name for f in fields(DialogueConfig)]
    parts = {}
    for section, values in d.items():
        if section == "domain":
            continue
        if section not in names:
            raise ConfigError(f"unknown config section {section!r}; sections are: {', '.join(names)}")
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


def apply_overrides(cfg: DialogueConfig, overrides) -> DialogueConfig:
    nested: dict[str, dict[str, Any]] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. meta.inner_steps=5)")
        section, sub = key.strip().split(".", 1)
        nested.setdefault(section, {})[sub] = value
    return from_dict(nested, cfg)


def get_preset(name: str) -> DialogueConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown dialogue preset {name!r}; presets are: {', '.join(sorted(PRESETS))}")
    return from_dict(PRESETS[name])


def config_from_json(text: str) -> DialogueConfig:
    d = json.loads(text)
    if not isinstance(d, dict) or d.get("domain") != DialogueConfig.domain:
        raise ConfigError("not a dialogue config (no \"domain\": \"dialogue\")")
    return from_dict(d)


def validate(cfg: DialogueConfig) -> None:
    d = cfg.to_dict()
    for key, allowed in CHOICES.items():
        section, sub = key.split(".")
        if d[section][sub] not in allowed:
            raise ConfigError(f"{key}={d[section][sub]!r} is not one of: {', '.join(allowed)}")
    for key, hi in (("task.meta_batch", 4096), ("task.k_shot", 1000), ("task.query", 1000), ("model.embed", 4096),
                    ("model.hidden", 4096), ("model.z_dim", 4096), ("meta.inner_steps", 1000),
                    ("train.steps", 10**7), ("data.prompt_len", 4096), ("data.reply_len", 4096)):
        section, sub = key.split(".")
        if not 1 <= d[section][sub] <= hi:
            raise ConfigError(f"{key} must be between 1 and {hi}, got {d[section][sub]}")
    if cfg.data.reply_len < 2:
        raise ConfigError("data.reply_len must be at least 2 (one byte and the end symbol)")
    if cfg.data.min_exchanges < cfg.task.k_shot + 1:
        raise ConfigError(f"data.min_exchanges={cfg.data.min_exchanges} leaves no query beside "
                          f"task.k_shot={cfg.task.k_shot} support exchanges: raise it")
    if min(cfg.loss.ml, cfg.loss.inner_adv, cfg.loss.outer_adv) < 0 or cfg.model.tau <= 0 \
            or cfg.model.temperature <= 0:
        raise ConfigError("loss weights must be non-negative, model.tau and model.temperature positive")
    if cfg.meta.n_d + cfg.meta.n_g == 0:
        raise ConfigError("meta.n_d and meta.n_g are both 0: the inner loop would do nothing")
    if cfg.meta.learner == "joint" and cfg.meta.n_d < 1:
        raise ConfigError("meta.learner=joint draws its fake batch from the discriminator noise: set meta.n_d >= 1")
