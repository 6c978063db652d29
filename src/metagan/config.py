"""Configuration: one frozen dataclass per part, named presets, dotted overrides.

Example:
    >>> from metagan.config import get_preset, apply_overrides
    >>> cfg = apply_overrides(get_preset("digits-demo"), ["meta.inner_steps=3", "train.steps=10"])
    >>> cfg.meta.inner_steps
    3
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # digits | omniglot | folder
    root: str | None = None  # omniglot: data dir (default $METAGAN_DATA_DIR or ~/.cache/metagan); folder: root/<class>/*
    split: str = "background"  # omniglot: background (background/evaluation) | vinyals (train/test, rotations)
    image_size: int = 16  # images are resized to image_size x image_size
    channels: int = 1  # 1 (grey) or 3 (RGB)
    heldout: tuple[str, ...] = ()  # digits/folder: names of held-out classes; empty = the source's default
    heldout_fraction: float = 0.3  # folder: fraction of classes held out when `heldout` is empty
    invert: bool = False  # folder: files have dark strokes on a light background (stored as ink = bright)
    download: bool = True  # omniglot: download missing files from the canonical source when online


@dataclass(frozen=True)
class TaskConfig:
    k_shot: int = 5  # support examples per task (the K of K-shot)
    q_query: int = 10  # query examples per task (outer loss of MAML-style learners)
    meta_batch: int = 8  # tasks per outer step


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "conv"  # conv (images) | mlp (vectors)
    z_dim: int = 32
    g_width: int = 32  # generator channels at full resolution (doubles at each lower resolution)
    d_width: int = 32  # discriminator channels at the first layer (doubles at each stride)
    norm: str = "none"  # generator normalisation: none | group | layer (no running statistics ever)
    hidden: int = 256  # mlp: hidden width
    # none | support: G and D also read an embedding of the task's support set | image: G transforms one
    # support image (encoder-decoder), D judges (sample, support image) pairs (DAGAN-style)
    condition: str = "none"
    e_dim: int = 32  # condition=support: embedding size
    # condition=image: where the generator's decoder reads the reference: half (s/2 and s/4 encoder features)
    # | full (also the reference image itself at full resolution, a skip at every resolution as in DAGAN)
    g_skip: str = "half"
    # condition=image: what the generator outputs. decode: the decoder draws the image | warp: the reference image
    # resampled along a smooth displacement field (at most 1/8 of the image) that the decoder predicts from the
    # reference and z, so strokes keep their look and z moves them (needs g_skip=half: nothing is drawn)
    g_out: str = "decode"
    # g_out=warp: bound of a global affine displacement driven by z (0 = off; 0.25 = up to 1/8 of the
    # image of shift and a 0.25 linear part: about 14 degrees of rotation, 25% of scale or shear)
    g_affine: float = 0.0
    d_depth: int = 2  # conv discriminator: 2 strided convolutions, or 3 (one more 3x3 conv at s/4)


@dataclass(frozen=True)
class LossConfig:
    kind: str = "ns"  # ns (non-saturating) | wgan-gp | hinge
    gp_weight: float = 10.0  # wgan-gp: weight of the gradient penalty
    r1_gamma: float = 0.0  # R1 penalty weight on real data (0 = off); added as gamma/2 * E|grad D(x)|^2
    # paired models (model.condition=image): weight of the matching-aware term (Reed et al. 2016): D also
    # learns that a real image beside a reference of another class is fake (0 = off; meta-training only)
    mismatch: float = 0.0
    # weight w of the diversity-sensitive term (Yang et al. 2019, DSGAN) in the generator's losses:
    # -w min(mean |G(z) - G(z')| / mean |z - z'|, diversity_tau), z' = -z with the same context; rewards G for
    # using its noise, bounded (SGD-safe in the inner loop, unlike MSGAN's 1 / ratio) (0 = off)
    diversity: float = 0.0
    diversity_tau: float = 0.1
    # the generator's outer (query) loss of the meta-learners with one (maml, fomaml, metasgd, joint):
    # outer_adv x its adversarial loss + outer_mmd x MMD^2 between the adapted generator's samples and the real
    # query images in the meta-discriminator's hidden features (a measure of the class's whole distribution,
    # which the adversarial loss against an adapted discriminator is not; 0 = off).
    outer_adv: float = 1.0
    outer_mmd: float = 0.0
    # the generator's inner-loop (and adaptation) loss: inner_adv x its adversarial loss against the adapting
    # discriminator + its regulariser + inner_mmd x MMD^2 (biased estimate, so K = 1 works) between its samples
    # and the support images in the hidden features of the discriminator the adaptation starts from (the
    # meta-discriminator, held constant; 0 = off)
    inner_adv: float = 1.0
    inner_mmd: float = 0.0
    # the discriminator's query loss (maml, fomaml, metasgd, joint): + outer_select x MMD^2 between the query's
    # generated images, weighted by softmax(adapted D's logits / select_tau), and its real images, in the
    # meta-discriminator's hidden features: trains the adapted discriminator to rank the generator's samples
    # so that the ones it rates most real look like the class (what `--select` keeps; 0 = off)
    outer_select: float = 0.0
    select_tau: float = 1.0


@dataclass(frozen=True)
class MetaConfig:
    learner: str = "maml"  # maml | fomaml | reptile | metasgd | joint (pre-training baseline, no inner loop)
    inner_steps: int = 5  # inner steps; each runs n_d discriminator then n_g generator updates
    n_d: int = 1
    n_g: int = 1
    inner_lr_g: float = 0.05
    inner_lr_d: float = 0.05
    outer_lr_g: float = 1e-3
    outer_lr_d: float = 1e-3
    outer_lr_rates: float = 1e-4  # metasgd: outer learning rate of the learned inner rates
    outer_optimizer: str = "adam"  # adam | sgd
    beta1: float = 0.5
    beta2: float = 0.999
    first_order: bool = False  # metasgd: first-order approximation of the meta-gradient
    vectorize: str = "auto"  # vmap | loop | auto (vmap; the loop for second order on large models on the CPU)
    grad_clip: float = 0.0  # clip the meta-gradient norm per player (0 = off)
    # metasgd: project the learned rates onto >= 0 after every outer step (false: unconstrained, as in Li et al.
    # 2017, where a rate can turn negative and its parameter then ascends its own inner loss)
    clamp_rates: bool = False
    # metasgd: the shape of the learned inner rates. element: one rate per scalar parameter (Li et al. 2017);
    # tensor: one rate per weight or bias tensor (per layer, as MAML++'s learned rates without the per-step
    # index): 2 numbers per layer instead of one per weight, so each rate's meta-gradient sums over its layer
    rates: str = "element"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    seed: int = 0
    ema: float = 0.999  # decay of the EMA copy of the generator meta-parameters (0 = off)
    log_every: int = 10
    sample_every: int = 250  # sample grid cadence (0 = only at the end)
    ckpt_every: int = 250  # checkpoint cadence (always one at the end)
    keep_every: int = 0  # also keep checkpoint-<step>.safetensors every this many steps (0 = off), for selection
    adapt_steps: int = 0  # adaptation steps at sampling time (0 = meta.inner_steps)
    grid_classes: int = 5  # held-out classes (rows) in a sample grid
    grid_samples: int = 8  # generated samples per row
    out_dir: str = "runs"
    device: str = "cpu"
    dtype: str = "float32"  # float32 | float64
    threads: int = 0  # torch.set_num_threads (0 = leave as is)
    # start the players (and EMA) from this checkpoint's generator and discriminator (a run folder, a file or
    # pretrained:NAME; any learner, same networks); optimizer, step, data order and learned rates start fresh
    init_from: str | None = None


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


CHOICES = {
    "data.source": ("digits", "omniglot", "folder"),
    "data.split": ("background", "vinyals"),
    "model.kind": ("conv", "mlp"),
    "model.norm": ("none", "group", "layer"),
    "model.condition": ("none", "support", "image"),
    "loss.kind": ("ns", "wgan-gp", "hinge"),
    "meta.learner": ("maml", "fomaml", "reptile", "metasgd", "joint"),
    "meta.outer_optimizer": ("adam", "sgd"),
    "meta.vectorize": ("vmap", "loop", "auto"),
    "meta.rates": ("element", "tensor"),
    "model.g_skip": ("half", "full"),
    "model.g_out": ("decode", "warp"),
    "model.d_depth": (2, 3),
    "train.dtype": ("float32", "float64"),
}


def _omniglot(**meta: Any) -> dict[str, Any]:
    return {
        "data": {"source": "omniglot", "image_size": 28},
        "task": {"k_shot": 4, "q_query": 8, "meta_batch": 8},
        "model": {"z_dim": 64, "g_width": 32, "d_width": 32},
        "train": {"steps": 20000, "sample_every": 1000, "ckpt_every": 500},
        "meta": meta,
    }


_BALANCED = {"inner_steps": 5, "n_d": 1, "n_g": 2, "outer_lr_g": 1e-3, "outer_lr_d": 2e-4}
# Rates that train Omniglot stably (session-3 runs, docs/models.md): with G's outer rate 5x D's (the digits
# balance) D sat at chance while G chased it (blobs after 1500 joint steps); equal rates gave recognisable
# characters in 500. Inner SGD at 0.05 blew up D within 150 FOMAML steps and ruined a pre-trained G in 10
# adaptation steps; 0.01 keeps both (0.02 already degrades samples).
_STABLE = {**_BALANCED, "outer_lr_g": 2e-4, "outer_lr_d": 2e-4, "inner_lr_g": 0.01, "inner_lr_d": 0.01}

# The meta-learners' outer rates when they start from a pre-trained model (the omniglot-<learner> presets below)
_FINETUNE = {"outer_lr_g": 2e-5, "outer_lr_d": 2e-5}


def _metagan(**meta: Any) -> dict[str, Any]:
    """metagan's Omniglot models: the generator transforms a support image, the discriminator judges
    (sample, support image) pairs (model.condition=image), non-saturating loss with R1 = 1, K = 5.
    On Omniglot the unconditional presets below gave blank samples after 900 FOMAML steps, this one
    recognisable characters after 200 (docs/models.md)."""
    base = _omniglot(**{**_STABLE, **meta})
    base["task"] = {"k_shot": 5, "q_query": 10, "meta_batch": 8}
    # GroupNorm in G: without it a FOMAML run's generator saturated (tanh at +-1, zero gradient) at step 160.
    # (Session 5's decoding generator read the reference at full resolution, g_skip=full: fidelity 0.92 at joint
    # step 500 against 0.80 with the s/2 skip only; a third D conv, model.d_depth=3, gave 0.88.)
    # g_out=warp (session 6): the sample is the reference resampled along a displacement field driven by z, and
    # the diversity term makes z drive it. Joint training, step 200, training classes: fidelity 0.978, diversity
    # 1.09, low-data accuracy (n = 5) +6.1 points over no augmentation, where the full-skip decoder's samples
    # added nothing (-0.8) and the diversity term alone only traded fidelity for diversity (docs/models.md)
    # g_affine (session 7): z also drives a global affine displacement (rotation, scale, shear, shift), bounded
    # at 0.25: joint step 500, training classes: fidelity 0.990, low-data accuracy (n = 5) +7 points over no
    # augmentation (the local warp alone: +6); on the evaluation split the low-data gain of the meta-learned
    # models rose from +4.3 to +6.5 points over 5 seeds and fidelity from 0.957 to 0.974 (docs/models.md)
    base["model"] = {**base["model"], "condition": "image", "norm": "group", "g_out": "warp", "g_affine": 0.25}
    # mismatch: without the matching-aware term the jointly trained G stopped following its reference after
    # ~600 steps (fidelity 0.30 on training classes at step 2000); with it 0.88 at step 750 (docs/models.md)
    base["loss"] = {"kind": "ns", "r1_gamma": 1.0, "mismatch": 1.0, "diversity": 0.3}
    base["train"] = {**base["train"], "ckpt_every": 250, "adapt_steps": 10}
    return base


def _dawson() -> dict[str, Any]:
    base = _omniglot(learner="fomaml", **_STABLE)
    base["model"] = {**base["model"], "norm": "group"}
    base["loss"] = {"kind": "ns", "r1_gamma": 1.0}
    return base


# Meta-SGD since session 9: first order, the adaptation's own 10 inner steps, and a generator query loss that
# measures the class distribution after adaptation (MMD^2 to the query images in the meta-discriminator's
# features) instead of the adversarial loss against the adapted discriminator, which rewarded adapting where
# adapting hurt (session 8). Its learned rates switch off the adaptation of the warp field (docs/models.md).
# Session 11: one rate per weight or bias tensor (meta.rates=tensor), kept >= 0 (clamp_rates). The element-wise
# rates random-walked under Adam (session 9); per tensor they learned a plain strategy: the warp field, the
# encoder and the GroupNorm stop adapting, the layers that read z (fc, affine) and D's last layer adapt faster.
# Training classes, 10 adaptation steps, step 25: FD / fidelity 0.851 / 0.993 against 0.851 / 0.988 (docs/models.md)
_METASGD = _metagan(learner="metasgd", first_order=True, inner_steps=10, outer_lr_rates=5e-4, rates="tensor",
                    clamp_rates=True, **_FINETUNE)
_METASGD["loss"] = {**_METASGD["loss"], "outer_mmd": 10.0, "outer_adv": 0.0}

PRESETS: dict[str, dict[str, Any]] = {
    # The main job: seven digits meta-train, three are held out; minutes on 2 cores.
    "digits-demo": {
        "data": {"source": "digits", "image_size": 16},
        "task": {"k_shot": 5, "q_query": 10, "meta_batch": 4},
        "model": {"z_dim": 16, "g_width": 16, "d_width": 16},
        # The discriminator meta-learns faster than the generator; a 5x smaller outer rate and two
        # generator updates per inner step keep the game balanced (with equal rates D wins in ~100 steps).
        "meta": {"learner": "fomaml", "inner_steps": 5, "n_d": 1, "n_g": 2, "inner_lr_g": 0.05,
                 "inner_lr_d": 0.05, "outer_lr_g": 1e-3, "outer_lr_d": 2e-4},
        # Adapting with twice the meta-training inner steps raised held-out fidelity (0.97 -> 1.00 in a
        # 2000-step run); see the notes of issue 2.
        "train": {"steps": 2000, "ema": 0.99, "adapt_steps": 10, "sample_every": 500, "ckpt_every": 500,
                  "log_every": 20},
    },
    # metagan's Omniglot models, one per meta-learner (shipped as pretrained:<name>, docs/models.md).
    # They start from omniglot-joint (train.init_from) with outer rates 10x below the joint run's: at 2e-4 a fresh
    # Adam moved the pre-trained generator far in 50 meta-steps (FOMAML's fidelity on training classes 0.97 ->
    # 0.70, Reptile's -> 0.88; session 5, docs/models.md).
    "omniglot-fomaml": _metagan(learner="fomaml", **_FINETUNE),
    "omniglot-maml": _metagan(learner="maml", **_FINETUNE),
    "omniglot-metasgd": _METASGD,
    "omniglot-reptile": _metagan(learner="reptile", **_FINETUNE),
    # Baseline: the same networks pre-trained on all background classes jointly (no inner loop; a
    # DAGAN-style conditional GAN); adapting it is "pre-train, then fine-tune".
    "omniglot-joint": _metagan(learner="joint"),
    # The published designs, reproduced in our harness as baselines (unconditional generators).
    # FIGR (Clouatre & Demers 2019): Reptile with WGAN-GP, K=4, 10 inner steps.
    "omniglot-figr": {
        **_omniglot(learner="reptile", inner_steps=10, n_d=1, n_g=1, inner_lr_g=1e-2, inner_lr_d=1e-2,
                    outer_optimizer="sgd", outer_lr_g=0.1, outer_lr_d=0.1),
        "loss": {"kind": "wgan-gp", "gp_weight": 10.0},
    },
    # DAWSON (Liang et al. 2020): first-order MAML, non-saturating loss, unconditional generator. Given the
    # stabilisers metagan's presets use (equal outer Adam rates 2e-4, inner SGD 0.01, GroupNorm in G, R1 = 1):
    # with the digits balance (G's outer rate 5x D's, inner 0.05) its D loss blew up after ~1300 steps
    # (38 at step 1390) and its best snapshot reached fidelity 0.05 / FD 19.6 on training classes, with
    # these 0.11 / 9.6 (docs/models.md).
    "omniglot-dawson": _dawson(),
    # A seconds-long configuration for tests and smoke runs.
    "tiny": {
        "data": {"source": "digits", "image_size": 8},
        "task": {"k_shot": 2, "q_query": 2, "meta_batch": 2},
        "model": {"z_dim": 4, "g_width": 4, "d_width": 4},
        "meta": {"learner": "fomaml", "inner_steps": 1},
        "train": {"steps": 4, "sample_every": 2, "ckpt_every": 2, "log_every": 1, "grid_classes": 2,
                  "grid_samples": 2},
    },
}


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (from JSON or a command-line string) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a comma-separated list, got {value!r}")
        return tuple(_coerce(v, args[0], key) for v in value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value, 10)
        if tp is float:
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value.strip()
    except ValueError:
        raise ConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - a bug in this module


def _known(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


def from_dict(d: dict[str, Any], base: Config | None = None) -> Config:
    """Build a Config from a nested dict, starting from `base` (defaults if None). Unknown keys raise."""
    base = base or Config()
    if not isinstance(d, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(d).__name__}")
    parts = {}
    for section, values in d.items():
        if section not in {f.name for f in fields(Config)}:
            raise ConfigError(f"unknown config section {section!r}; sections are: {_known(Config)}")
        sub = getattr(base, section)
        hints = _field_types(type(sub))
        changes = {}
        for key, value in (values or {}).items():
            if key not in hints:
                raise ConfigError(
                    f"unknown config key {section}.{key}; keys of {section} are: {_known(type(sub))}")
            changes[key] = _coerce(value, hints[key], f"{section}.{key}")
        parts[section] = replace(sub, **changes)
    cfg = replace(base, **parts)
    validate(cfg)
    return cfg


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """Apply `section.key=value` strings (as given to `--set`)."""
    nested: dict[str, dict[str, Any]] = {}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. meta.inner_steps=5)")
        key, value = item.split("=", 1)
        section, sub = key.strip().split(".", 1)
        nested.setdefault(section, {})[sub] = value
    return from_dict(nested, cfg)


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets are: {', '.join(sorted(PRESETS))}")
    return from_dict(PRESETS[name])


def vmap_refusal(cfg: Config) -> str | None:
    """Why the meta-gradient of this config cannot run under vmap, or None where it can: second order through
    the warp generator (grid_sample's double backward is an in-place operation vmap refuses)."""
    second_order = cfg.meta.learner == "maml" or (cfg.meta.learner == "metasgd" and not cfg.meta.first_order)
    if second_order and cfg.model.g_out == "warp":
        return ("second-order meta-gradients through model.g_out=warp cannot run under vmap (grid_sample's double "
                "backward is in-place)")
    return None


def validate(cfg: Config) -> None:
    """Range and choice checks, with the fix in the message."""
    d = cfg.to_dict()
    for key, allowed in CHOICES.items():
        section, sub = key.split(".")
        if d[section][sub] not in allowed:
            raise ConfigError(f"{key}={d[section][sub]!r} is not one of: {', '.join(map(str, allowed))}")
    positive = ["task.k_shot", "task.meta_batch", "meta.inner_steps", "model.z_dim", "model.g_width",
                "model.d_width", "data.image_size", "train.steps"]
    for key in positive:
        section, sub = key.split(".")
        if d[section][sub] < 1:
            raise ConfigError(f"{key} must be at least 1, got {d[section][sub]}")
    for key in ["task.q_query", "meta.n_d", "meta.n_g", "train.adapt_steps", "train.sample_every",
                "train.ckpt_every", "train.keep_every", "train.threads"]:
        section, sub = key.split(".")
        if d[section][sub] < 0:
            raise ConfigError(f"{key} must be non-negative, got {d[section][sub]}")
    if cfg.meta.n_d + cfg.meta.n_g == 0:
        raise ConfigError("meta.n_d and meta.n_g are both 0: the inner loop would do nothing")
    if cfg.meta.learner in ("maml", "fomaml", "metasgd", "joint") and cfg.task.q_query < 1:
        raise ConfigError(f"meta.learner={cfg.meta.learner} takes its outer loss on query examples: "
                          "set task.q_query to at least 1")
    if cfg.model.kind == "conv" and cfg.data.image_size % 4:
        raise ConfigError(f"data.image_size={cfg.data.image_size}: the conv models need a multiple of 4 "
                          "(e.g. 16, 28, 32)")
    if cfg.data.channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3, got {cfg.data.channels}")
    if cfg.model.g_skip != "half" and cfg.model.condition != "image":
        raise ConfigError(f"model.g_skip={cfg.model.g_skip} is a skip from the reference image: it needs "
                          "model.condition=image (or leave model.g_skip=half)")
    if cfg.model.g_out == "warp" and (cfg.model.condition != "image" or cfg.model.g_skip != "half"):
        raise ConfigError("model.g_out=warp resamples the reference image: it needs model.condition=image and "
                          "model.g_skip=half (or leave model.g_out=decode)")
    if cfg.model.g_affine < 0 or (cfg.model.g_affine > 0 and cfg.model.g_out == "decode"):
        raise ConfigError(f"model.g_affine={cfg.model.g_affine} bounds the warp's affine component: it needs "
                          "model.g_out=warp and a value >= 0 (with model.g_out=decode set model.g_affine=0)")
    if cfg.meta.vectorize == "vmap" and vmap_refusal(cfg):
        raise ConfigError(f"{vmap_refusal(cfg)}: set meta.vectorize=loop or auto")
    for name in ("mismatch", "diversity", "diversity_tau", "outer_adv", "outer_mmd", "inner_adv", "inner_mmd",
                 "outer_select"):
        if getattr(cfg.loss, name) < 0:
            raise ConfigError(f"loss.{name} must be non-negative, got {getattr(cfg.loss, name)}")
    if cfg.loss.mismatch > 0:
        if cfg.model.condition != "image":
            raise ConfigError("loss.mismatch pairs real images with references of another class: it needs "
                              "model.condition=image (or set loss.mismatch=0)")
        if cfg.loss.kind == "wgan-gp":
            raise ConfigError("loss.mismatch needs a bounded fake term: use loss.kind=ns or hinge, or "
                              "loss.mismatch=0")
        if cfg.task.meta_batch < 2:
            raise ConfigError("loss.mismatch takes the other class from another task of the meta-batch: set "
                              "task.meta_batch to at least 2")
    if cfg.loss.select_tau <= 0:
        raise ConfigError(f"loss.select_tau is a softmax temperature: use a value > 0, got {cfg.loss.select_tau}")
    for name, whose in (("outer_mmd", "the generator's"), ("outer_select", "the discriminator's")):
        if getattr(cfg.loss, name) <= 0:
            continue
        if cfg.meta.learner == "reptile":
            raise ConfigError(f"loss.{name} weighs a term of {whose} query loss, and Reptile has none (its "
                              "meta-gradient is the inner loop's displacement): use maml, fomaml, metasgd or "
                              f"joint, or set loss.{name}=0")
        if cfg.task.q_query < 2:
            raise ConfigError(f"loss.{name} compares the generated and the real query images as samples: set "
                              "task.q_query to at least 2")
    if cfg.loss.outer_adv == 0 and cfg.loss.outer_mmd == 0 and cfg.meta.learner != "reptile":
        raise ConfigError("loss.outer_adv=0 and loss.outer_mmd=0 leave the generator without a query loss: "
                          "set one of them above 0")
    if cfg.meta.clamp_rates and cfg.meta.learner != "metasgd":
        raise ConfigError("meta.clamp_rates constrains Meta-SGD's learned inner rates: set meta.learner=metasgd "
                          "or meta.clamp_rates=false")
    if cfg.meta.rates != "element" and cfg.meta.learner != "metasgd":
        raise ConfigError("meta.rates shapes Meta-SGD's learned inner rates: set meta.learner=metasgd or "
                          "meta.rates=element")
    if cfg.loss.inner_adv == 0 and cfg.loss.inner_mmd == 0:
        raise ConfigError("loss.inner_adv=0 and loss.inner_mmd=0 leave the generator without an inner-loop "
                          "(adaptation) loss: set one of them above 0")
    if not 0.0 <= cfg.train.ema < 1.0:
        raise ConfigError(f"train.ema must be in [0, 1), got {cfg.train.ema}")
    if not 0.0 < cfg.data.heldout_fraction < 1.0:
        raise ConfigError(f"data.heldout_fraction must be in (0, 1), got {cfg.data.heldout_fraction}")


def config_from_json(text: str) -> Config:
    return from_dict(json.loads(text))

