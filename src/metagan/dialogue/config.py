"""Configuration of the dialogue domain: its data, task, model and loss sections beside metagan's MetaConfig and
TrainConfig (the meta-learners and the outer step are shared), named presets and dotted overrides.

    >>> cfg = apply_overrides(get_preset("dialogue-gan-fomaml"), ["train.steps=100", "meta.inner_steps=2"])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import MetaConfig, TrainConfig
from ..config_loader import ConfigLoader, Sections, check_choices, check_ranges
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
    k_shot: int = 5                 # support exchanges of a training task (the largest, with k_min)
    k_min: int = 0                  # > 0: each meta-batch draws its support size from k_min..k_shot
    query: int = 5                  # query exchanges of a training task


@dataclass(frozen=True)
class DialogueModel:
    embed: int = 16                 # byte embedding size (G and D)
    hidden: int = 64                # GRU state and encoder width of G; D's width
    z_dim: int = 16                 # latent that enters G's initial state (likelihoods read z = 0)
    tau: float = 1.0                # Gumbel-softmax temperature of G's relaxed samples (training)
    temperature: float = 0.7        # sampling temperature of generated replies (evaluation, `metagan reply`)
    eos_grad: bool = False          # G's adversarial gradient may move the end of a reply (False: only the likelihood)
    copy: bool = False              # retrieve and edit: G reads the support exchanges and may copy their bytes


@dataclass(frozen=True)
class DialogueLoss:
    kind: str = "ns"                # ns (non-saturating) | hinge
    ml: float = 1.0                 # weight of G's teacher-forced cross-entropy on real replies (fluency)
    inner_adv: float = 0.1          # weight of G's adversarial loss in the inner loop (0 and meta.n_d=0: a plain LM)
    outer_adv: float = 0.1          # weight of G's adversarial loss on the query


@dataclass(frozen=True)
class DialogueConfig(Sections):
    data: DialogueData = field(default_factory=DialogueData)
    task: DialogueTask = field(default_factory=DialogueTask)
    model: DialogueModel = field(default_factory=DialogueModel)
    loss: DialogueLoss = field(default_factory=DialogueLoss)
    meta: MetaConfig = field(default_factory=lambda: MetaConfig(vectorize="vmap"))
    # no EMA: adaptation starts from the raw meta-parameters, as in the ratings domain
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=200, ema=0.0, log_every=10,
                                                                   sample_every=0, ckpt_every=50))

    domain = "dialogue"


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
# Every dialogue model retrieves and edits (model.copy: it reads the topic's support exchanges and may copy their
# bytes) and meta-trains on support sets of 1 to 10 exchanges, so one model serves every K. Chosen on the
# validation topics (docs/dialogue.md "Retrieve and edit"): fine-tuned from the joint model at K = 5, topic
# fidelity 0.45-0.48 against 0.40 without the memory, perplexity 12.0 against 14.3; trained on K = 5 alone, its
# perplexity at K = 1 was 92 (copying from one exchange with the confidence of five), with K drawn from 1..10 19.6.
_TASK = {"k_shot": 10, "k_min": 1}
_MODEL = {"copy": True}

PRESETS: dict[str, dict[str, Any]] = {
    # metagan's meta-learned reply GAN, one preset per meta-learner (maml, reptile: the fomaml choices, not tuned)
    "dialogue-gan-maml": {"task": _TASK, "model": _MODEL, "loss": _GAN_LOSS,
                          "meta": {**_META, "learner": "maml"}},
    "dialogue-gan-fomaml": {"task": _TASK, "model": _MODEL, "loss": _GAN_LOSS,
                            "meta": {**_META, "learner": "fomaml"}},
    "dialogue-gan-reptile": {"task": _TASK, "model": _MODEL, "loss": _GAN_LOSS,
                             "meta": {**_META, "learner": "reptile", "outer_optimizer": "sgd", "outer_lr_g": 1.0,
                                      "outer_lr_d": 1.0}},
    # clamp_rates: a negative learned rate would ascend its inner loss
    "dialogue-gan-metasgd": {"task": _TASK, "model": _MODEL, "loss": _GAN_LOSS,
                             "meta": {**_META, "learner": "metasgd", "first_order": True, "rates": "tensor",
                                      "clamp_rates": True, "outer_lr_rates": 1e-2}},
    # the same generator trained jointly on all training topics by likelihood alone (no inner loop; SeqGAN-style
    # pre-training: trained adversarially it collapsed to empty replies): the no-adaptation and fine-tuning
    # baselines and the meta-learners' warm start. 400 steps: validation NLL still falling at 300 (2.55-2.6)
    "dialogue-joint": {"task": _TASK, "model": _MODEL, "loss": {"inner_adv": 0.0, "outer_adv": 0.0},
                       "meta": {**_META, "learner": "joint"}, "train": {"steps": 400}},
    # PAML-style: the same generator as a plain language model (ML loss only, no discriminator), first-order MAML,
    # from the same warm start
    "dialogue-lm-fomaml": {"task": _TASK, "model": _MODEL, "loss": {"inner_adv": 0.0, "outer_adv": 0.0},
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


def validate(cfg: DialogueConfig) -> None:
    d = cfg.to_dict()
    check_choices(d, CHOICES)
    check_ranges(d, {key: (1, hi) for key, hi in (
        ("task.meta_batch", 4096), ("task.k_shot", 1000), ("task.query", 1000), ("model.embed", 4096),
        ("model.hidden", 4096), ("model.z_dim", 4096), ("meta.inner_steps", 1000), ("train.steps", 10**7),
        ("data.prompt_len", 4096), ("data.reply_len", 4096))})
    if cfg.data.reply_len < 2:
        raise ConfigError("data.reply_len must be at least 2 (one byte and the end symbol)")
    if not 0 <= cfg.task.k_min <= cfg.task.k_shot:
        raise ConfigError(f"task.k_min={cfg.task.k_min} must lie in 0..task.k_shot={cfg.task.k_shot} (0: every "
                          "task has k_shot support exchanges)")
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


# from_dict, apply_overrides, get_preset and config_from_json (which refuses a config of another domain), with the
# errors config_loader.ConfigLoader describes
LOADER = ConfigLoader(DialogueConfig, PRESETS, validate, preset_noun="dialogue preset")
from_dict, apply_overrides, get_preset, config_from_json = (LOADER.from_dict, LOADER.apply_overrides,
                                                            LOADER.get_preset, LOADER.from_json)
