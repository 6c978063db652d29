"""The Omniglot suite: its methods and the presets they train, budgets, held-out classes and feature network,
sample grids and report (`metagan benchmark --suite omniglot`). Every method is evaluated at every K with the same
protocol and adaptation budget; DIR/samples-<method>.png shows per held-out class 5 real images, then samples."""
from __future__ import annotations

from pathlib import Path

import torch

from ..baselines import affine_augmenter, held_out_real, metagan_generator, scratch_model, support_copier
from ..config import DataConfig, get_preset
from ..data import files_inverted, from_model_space, save_grid, to_model_space
from ..evaluate import PROTOCOLS, SPLITS, chosen_classes, split_dataset
from ..lowdata import IMAGES
from ..metrics.features import ASSET, load_feature_net, sha256
from ..plots import plot_results
from .harness import Suite, model_generator
from .report import (METRICS, REFERENCES, _interval_note, _lowdata_lines, _paired_lines, _real_copy, _reference_lines,
                     _spread_lines, method_row)
from .results import _HEADER_DEFAULTS

# method -> (preset to train, or None), in report order. pretrain-only is pretrain-finetune's model used without
# adaptation (0 steps: the conditional generator transforms the K shots as it is, DAGAN's use)
METHODS = {
    "support-copy": None,
    "real": None,
    "no-augmentation": None,
    "affine": None,
    "gan-from-scratch": None,
    "pretrain-finetune": "omniglot-joint",
    "pretrain-only": "omniglot-joint",
    "figr": "omniglot-figr",
    "dawson": "omniglot-dawson",
    "metagan-reptile": "omniglot-reptile",
    "metagan-fomaml": "omniglot-fomaml",
    "metagan-maml": "omniglot-maml",
    "metagan-metasgd": "omniglot-metasgd",
    "metagan-cvae": "omniglot-cvae",
    "metagan-cvae-metasgd": "omniglot-cvae-metasgd",
}

# the low-data arms of the real-only rows (lowdata.py); a method with a generator reports lowdata.default_arms
REAL_ONLY_ARMS = {"no-augmentation": ("none",), "affine": ("affine",)}

BUDGETS = {
    # a smoke run: every method and metric, minutes of training each
    "small": {"protocol": "small", "adapt_steps": 5, "meta_batch": 4, "pretrained": False,
              "steps": {"omniglot-joint": 300, "omniglot-cvae": 300, "omniglot-figr": 100, "omniglot-dawson": 100,
                        "omniglot-reptile": 100, "omniglot-fomaml": 100, "omniglot-maml": 40,
                        "omniglot-metasgd": 40, "omniglot-cvae-metasgd": 40}},
    # the README's table: the shipped models (pretrained:<preset>, docs/models.md); a method without one is
    # trained here for these steps (hours)
    "full": {"protocol": "full", "adapt_steps": 10, "meta_batch": 8, "pretrained": True,
             "steps": {"omniglot-joint": 20000, "omniglot-cvae": 20000, "omniglot-figr": 20000,
                       "omniglot-dawson": 20000, "omniglot-reptile": 20000, "omniglot-fomaml": 20000,
                       "omniglot-maml": 5000, "omniglot-metasgd": 5000, "omniglot-cvae-metasgd": 5000}},
}
SHOTS = (1, 5)


def _method_generator(name: str, budget: dict, checkpoints: dict, data_root, out: Path, progress: bool, log,
                      select: float = 1.0, keep_generator: bool = False):
    """The few-shot generator of a method (None for no augmentation), training its preset first when the
    budget has no shipped model for it and no checkpoint was given; and what to record about it."""
    info: dict = {}
    if name == "no-augmentation":
        gen = None
    elif name == "affine":
        gen = affine_augmenter()
    elif name == "support-copy":
        gen = support_copier()
    elif name == "real":
        gen = held_out_real()
    elif name == "gan-from-scratch":
        gen = metagan_generator(scratch_model(get_preset("omniglot-dawson")), budget["adapt_steps"],
                                use_ema=False, select=select, keep_generator=keep_generator)
        info["config"] = "omniglot-dawson architecture (unconditional), random init"
    else:
        return model_generator(name, METHODS, budget, checkpoints, data_root, out, progress, log, select,
                               keep_generator)
    return gen, info


def _sample_grid(gen, heldout, protocol, path: Path, invert: bool = True, rows: int = 6, k: int = 5) -> None:
    """samples-<method>.png: per held-out class (the first `rows` chosen), its k real images, then 10 samples."""
    g = torch.Generator().manual_seed(12345)
    lines = []
    for c in chosen_classes(heldout, protocol)[:rows]:
        support = heldout.images[c][:k]
        pool = (to_model_space(heldout.images[c][k:]),) if getattr(gen, "needs_pool", False) else ()  # real
        fake = gen(to_model_space(support), 10, g, *pool)[:10]
        lines.append(torch.cat([support, from_model_space(fake)]))
    save_grid(path, lines, invert=invert, scale=2)


def report_markdown(results: dict) -> str:
    """results.md of an Omniglot folder: a table per K, then the sections every suite shares (report.py)."""
    p = results["protocol"]
    split, version = (results.get(key, _HEADER_DEFAULTS[key]) for key in ("split", "protocol_version"))
    lines = [f"# metagan benchmark: {results['suite']}, budget {results['budget']}, {split} split "
             f"(protocol version {version})", "",
             f"Held-out: {results['heldout']}; {p['classes']} classes, {p['samples']} generated samples per class, "
             f"adaptation budget {results['adapt_steps']} steps (each method its own steps up to it)"
             + (f", samples selected by each method's adapted discriminator ({results['select']:g} candidates per "
                "sample)" if results.get("select", _HEADER_DEFAULTS["select"]) > 1 else "")
             + ("; each method's generator is the one before adaptation (only its discriminator's adaptation is "
                "used)" if results.get("keep_generator", _HEADER_DEFAULTS["keep_generator"]) else "")
             + f"; features: {results['feature_net']['file']} "
             f"(sha256 {results['feature_net']['sha256'][:12]}...). Protocol: docs/evaluation.md.", ""]
    shots = sorted({k for m in results["methods"].values() for k in m["k"]}, key=int)
    for k in shots:
        lines += [f"## K = {k}", "",
                  "| method | FD | KID | prec | rec | dens | cov | fidelity | diversity | copy | low-data 5/10/15 "
                  f"| {p['n_way']}-way proto acc |", "|---" * 12 + "|"]
        for name, m in results["methods"].items():
            if k not in m["k"]:  # a folder whose calls named different --shots
                lines.append(f"| {name} | not evaluated at K = {k} |" + " |" * 10)
                continue
            r = m["k"][k]
            lines.append(method_row(name, r, METRICS, REFERENCES))
        lines.append("")
    lines += _reference_lines(results, shots)
    lines += _paired_lines(results, shots)
    lines += _lowdata_lines(results) + _spread_lines(results)
    notes = []
    for name, m in results["methods"].items():
        if m.get("info", {}).get("adapt_steps") == 0 != results["adapt_steps"]:
            notes.append(f"{name}: 0 adaptation steps (not adapted: the pre-trained conditional generator transforms "
                         "the K shots as it is).")
        for k in (k for k in shots if k in m["k"]):
            r = m["k"][k]
            if r.get("nonfinite_sets"):
                notes.append(f"{name}, K = {k}: {r['nonfinite_sets']} of {r['sets']} adapted generators produced "
                             "non-finite images (adaptation diverged); FD is undefined (nan) on their draws and "
                             "their samples count as misses in fidelity.")
    lines += notes + ([""] if notes else [])
    lines += ["FD/KID: lower is better. Diversity 1.0 = as varied as real images. Copy ratio: "
              f"{_real_copy(results, shots)} for held-out real images, near 0 for a generator that returns its "
              "support. " + _interval_note(results) + " Low-data: accuracy of a small CNN over the evaluated classes "
              "trained on 5/10/15 real images per class (the row's first arm: none, affine or generated; every arm in "
              "the low-data section). Proto acc: prototypes from K real supports plus generated samples; "
              "± is the 95% confidence half-width over episodes.", ""]
    return "\n".join(lines)


def _omniglot_heldout(data_root: str | None, split: str):
    heldout = split_dataset(data_root, split)
    return heldout, f"Omniglot {split} split ({heldout.name}), {heldout.num_classes} classes"


def _omniglot_features(data_root: str | None, out: Path):
    return load_feature_net(), {"file": ASSET.name, "sha256": sha256(ASSET)}


def _omniglot_grid(gen, heldout, protocol, path: Path) -> None:
    _sample_grid(gen, heldout, protocol, path, files_inverted(DataConfig(source="omniglot")))


# the names are looked up at call time (lambdas), so a test can replace _method_generator or report_markdown
OMNIGLOT = Suite(name="omniglot", shots=SHOTS, methods=METHODS, real_only_arms=REAL_ONLY_ARMS,
                 budgets=BUDGETS, protocols=PROTOCOLS, splits=SPLITS, heldout=_omniglot_heldout,
                 features=_omniglot_features, method_generator=lambda *a, **k: _method_generator(*a, **k),
                 kit=IMAGES, extra=lambda protocol: None, sample_grid=_omniglot_grid,
                 report=lambda results: report_markdown(results),
                 plot=lambda results, path: plot_results(results, path))
