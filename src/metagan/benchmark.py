"""`metagan benchmark --suite omniglot --budget small|full --out DIR`: baselines and presets in one harness.

Trains what needs training (each meta-learner preset and the jointly pre-trained baseline) into
DIR/runs/ unless checkpoints are given, evaluates every method at every K with the same protocol and the
same adaptation budget, and writes DIR/results.json, DIR/results.md, DIR/metrics.png (bar charts) and
DIR/samples-<method>.png (each row a held-out class: 5 real images, then generated samples).

A run resumes: methods already in DIR/results.json under the same protocol (and with the same checkpoint
file: its sha256 is stored) are kept, so a killed run goes on where it stopped; methods of the folder that a call does not name stay in it.
Methods split over several processes (`--methods`, one DIR each) are combined into one report by
`merge_results` (`metagan benchmark --merge DIR ... --out DIR`).

A suite (`Suite`, named in SUITES) is what a domain brings: its methods and presets, budgets, held-out classes,
feature network, generators, low-data classifier and augmentation, extra metrics and report; the loop below,
resuming, the low-data share and repeats, and the shared report sections serve every suite. `omniglot` is
defined here; the time-series suite in metagan.series_suite.
"""
from __future__ import annotations

import importlib
import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from . import checkpoint as ckpt
from .adapt import check_select, load
from .baselines import affine_augmenter, held_out_real, metagan_generator, scratch_model, support_copier
from .checkpoint import PRETRAINED_PREFIX, pretrained_names, resolve
from .config import DataConfig, apply_overrides, get_preset
from .data import files_inverted, from_model_space, save_grid, to_model_space
from .errors import CheckpointError, ConfigError
from .evaluate import (POOLED, PROTOCOL_VERSION, PROTOCOLS, SPLITS, chosen_classes, evaluate, paired_bootstrap,
                       paired_difference, split_dataset)
from .lowdata import ARMS, IMAGES, Classifier, choose_share, default_arms, lowdata_accuracy
from .metrics.features import ASSET, load_feature_net, sha256
from .plots import plot_results
from .train import train

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
}

# the low-data arms of the real-only rows (lowdata.py); a method with a generator reports lowdata.default_arms
REAL_ONLY_ARMS = {"no-augmentation": ("none",), "affine": ("affine",)}

# reference rows, through the same harness: a copier (the K supports cycled) and held-out real images of the class
REFERENCES = {"support-copy": "reference: copies the supports", "real": "reference: held-out real images"}
NOT_ADAPTED = {"pretrain-only"}  # methods whose model generates without adaptation (0 steps), whatever the budget

BUDGETS = {
    # a smoke run: every method and metric, minutes of training each
    "small": {"protocol": "small", "adapt_steps": 5, "meta_batch": 4, "pretrained": False,
              "steps": {"omniglot-joint": 300, "omniglot-figr": 100, "omniglot-dawson": 100,
                        "omniglot-reptile": 100, "omniglot-fomaml": 100, "omniglot-maml": 40,
                        "omniglot-metasgd": 40}},
    # the README's table: the shipped models (pretrained:<preset>, docs/models.md); a method without one is
    # trained here for these steps (hours)
    "full": {"protocol": "full", "adapt_steps": 10, "meta_batch": 8, "pretrained": True,
             "steps": {"omniglot-joint": 20000, "omniglot-figr": 20000, "omniglot-dawson": 20000,
                       "omniglot-reptile": 20000, "omniglot-fomaml": 20000, "omniglot-maml": 5000,
                       "omniglot-metasgd": 5000}},
}
SHOTS = (1, 5)
METRICS = ("fd", "kid", "precision", "recall", "density", "coverage", "fidelity", "diversity", "copy_ratio")


@dataclass(frozen=True)
class Suite:
    """What a domain brings to the harness; run_benchmark, resuming, merging and the shared report sections are
    the same for every suite.

    shots: the K values evaluated by default. methods: method -> the preset it trains (None: nothing to train), in
    report order. real_only_arms: the low-data arms of the rows without a generator. budgets: name -> {"protocol",
    "adapt_steps", "meta_batch", "pretrained", "steps": {preset: steps}}.
    heldout(data_root, split) -> (held-out ClassDataset, its description); features(data_root, out) -> (feature
    network (N, *shape) -> (N, D), what results.json records of it); method_generator(name, budget, checkpoints,
    data_root, out, progress, log, select, keep_generator) -> (generator or None, info); kit: the low-data
    classifier and classic augmentation; extra(protocol) -> the suite's own per-draw metrics or None;
    sample_grid(gen, heldout, protocol, path); report(results) -> markdown; plot(results, path).
    """
    name: str
    shots: tuple
    methods: dict
    real_only_arms: dict
    budgets: dict
    protocols: dict
    splits: tuple
    heldout: Callable
    features: Callable
    method_generator: Callable
    kit: Classifier
    extra: Callable
    sample_grid: Callable
    report: Callable
    plot: Callable


# suite name -> "module:attribute" of its Suite, imported when asked for (a domain's code loads only for its suite)
SUITES = {"omniglot": "metagan.benchmark:OMNIGLOT", "pigcvp": "metagan.series_suite:PIGCVP"}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; suites are: {', '.join(SUITES)}")
    module, attr = SUITES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def _train_method(preset: str, budget: dict, data_root: str | None, out: Path, progress: bool) -> Path:
    cfg = get_preset(preset)
    overrides = [f"train.steps={budget['steps'][preset]}", f"task.meta_batch={budget['meta_batch']}",
                 "train.sample_every=0", "train.ckpt_every=500"]
    if data_root:
        overrides.append(f"data.root={data_root}")
    return train(apply_overrides(cfg, overrides), out_dir=out / "runs", name=preset, progress=progress)


def run_benchmark(suite: str, budget_name: str, out: str | Path, data_root: str | None = None,
                  checkpoints: dict[str, str] | None = None, methods: list[str] | None = None,
                  shots: tuple[int, ...] | None = None, progress: bool = True, log=print, lowdata_seeds: int = 1,
                  select: float = 1.0, keep_generator: bool = False, split: str = "evaluation") -> dict:
    """select > 1: every GAN method samples with selection by its adapted discriminator (the n of select x n
    candidates it rates most real, AdaptedGenerator.sample); part of the protocol, so a folder holds one value.
    split: the held-out classes (evaluate.split_dataset: evaluation, confirmation or validation); part of the
    protocol.
    keep_generator: every GAN method adapts as usual and samples from its generator before adaptation (with
    selection: its adapted discriminator chooses among them); part of the protocol too.
    Low-data (lowdata.py): no-augmentation and affine are the real-only arms "none" and "affine"; a method with a
    generator has the arms "generated" and "affine + generated", with the generated share of each batch chosen on
    the validation split's classes (stored as "lowdata_share").
    lowdata_seeds > 1: the low-data cell at the smallest n is repeated for every arm with protocol seeds
    0..lowdata_seeds-1 (each class's split into training and test images, the generation seeds and the
    classifier's streams; the same classes; seed 0 is the table's run) and stored per method as "lowdata_seeds";
    the report gives each arm's paired gain over "none", and the generated arms' over "affine", with intervals.
    A kept method (resumed folder) gets only the missing repeats."""
    if lowdata_seeds < 1:
        raise ConfigError(f"--lowdata-seeds must be at least 1 (1 = the single run of the table), got {lowdata_seeds}")
    check_select(select, "--select")
    s = get_suite(suite)
    shots = tuple(shots or s.shots)
    if split not in s.splits:
        raise ConfigError(f"unknown split {split!r}; the {suite} suite's splits are: {', '.join(s.splits)}")
    if budget_name not in s.budgets:
        raise ConfigError(f"unknown budget {budget_name!r}; budgets are: {', '.join(s.budgets)}")
    unknown = set(methods or []) - set(s.methods)
    if unknown:
        raise ConfigError(f"unknown methods {sorted(unknown)}; the {suite} suite's methods are: "
                          f"{', '.join(s.methods)}")
    budget, protocol = s.budgets[budget_name], s.protocols[s.budgets[budget_name]["protocol"]]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = dict(checkpoints or {})
    heldout, described = s.heldout(data_root, split)
    net, net_record = s.features(data_root, out)
    extra = s.extra(protocol)
    results: dict = {"suite": suite, "budget": budget_name, "adapt_steps": budget["adapt_steps"], "select": select,
                     "keep_generator": keep_generator, "split": split, "protocol_version": PROTOCOL_VERSION,
                     "protocol": asdict(protocol), "feature_net": net_record,
                     "metagan_version": __version__, "torch": torch.__version__, "machine": platform.machine(),
                     "heldout": described, "methods": {}}
    previous = _previous_results(out / "results.json", results)
    requested = methods or list(s.methods)
    # the folder's other methods stay in its results.json (same protocol, checked above)
    results["methods"] = {name: m for name, m in previous.items() if name not in requested}
    classes = chosen_classes(heldout, protocol)
    validation: list = []  # the validation split, read when the first method needs its generated share chosen
    for name in requested:
        done = previous.get(name)
        keep = done and set(map(str, shots)) <= set(done["k"]) and (
            name not in checkpoints or done["info"].get("checkpoint") == checkpoints[name]) and not (
            _weights_changed(done["info"]))
        if keep and "checkpoint" in done["info"]:  # its repeats, and a later method of the same preset, use it
            checkpoints[name] = done["info"]["checkpoint"]
        if keep and min(map(len, _seed_accs(done, protocol).values()), default=lowdata_seeds) >= lowdata_seeds:
            results["methods"][name] = done
            log(json.dumps({"kept": name, "from": str(out / "results.json")}))
            continue
        t0 = time.perf_counter()
        gen, info = s.method_generator(name, budget, checkpoints, data_root, out, progress, log, select,
                                       keep_generator)
        if keep:  # evaluated before: only the low-data repeats are missing
            entry = done
            log(json.dumps({"kept": name, "from": str(out / "results.json"), "adding": "lowdata_seeds"}))
        else:
            train_s = time.perf_counter() - t0
            arms, low = _lowdata_arms(name, gen, s), None
            if arms:
                share = _lowdata_share(gen, arms, validation, data_root, protocol, s)
                low = lowdata_accuracy(gen, heldout, classes, protocol, arms, share and share["share"], s.kit)
            per_k = {str(k): evaluate(gen, heldout, k, net, protocol, lowdata=low, extra=extra) for k in shots}
            info.update({"train_seconds": round(train_s, 1),
                         "eval_seconds": round(time.perf_counter() - t0 - train_s, 1)})
            entry = {"info": info, "k": per_k}
            if arms:
                entry["lowdata_share"] = share
            if gen is not None:
                s.sample_grid(gen, heldout, protocol, out / f"samples-{name}.png")
            log(json.dumps({"method": name, **info,
                            **{f"k{k}_{m}": _round(per_k[str(k)][m]) for k in shots for m in ("fd", "fidelity")}}))
        if lowdata_seeds > 1 and _seed_accs(entry, protocol):
            entry["lowdata_seeds"] = _lowdata_seeds(gen, heldout, classes, protocol, entry, lowdata_seeds, s.kit)
            log(json.dumps({"method": name, "lowdata_seeds": entry["lowdata_seeds"]}))
        results["methods"][name] = entry
        _write(out / "results.json", json.dumps(results, indent=2))
    results["methods"] = _in_report_order(results["methods"], s.methods)
    _write(out / "results.json", json.dumps(results, indent=2))  # and kept methods after the last evaluated one
    (out / "results.md").write_text(s.report(results))
    s.plot(results, out / "metrics.png")
    return results


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


def model_generator(name: str, methods: dict, budget: dict, checkpoints: dict, data_root, out: Path,
                    progress: bool, log, select: float = 1.0, keep_generator: bool = False):
    """A method with a trained model (its preset: methods[name]): the checkpoint given, else the shipped
    `pretrained:<preset>` when the budget uses them, else another method's model of the same preset, else one
    trained here; adapted for its own adaptation steps, at most the budget's (0 for NOT_ADAPTED). Returns
    (generator, info)."""
    preset = methods[name]
    if name not in checkpoints and budget["pretrained"] and preset in pretrained_names():
        checkpoints[name] = PRETRAINED_PREFIX + preset
    same = [m for m in checkpoints if m != name and methods.get(m) == preset]
    if name not in checkpoints and same:  # another method's model of the same preset (trained above)
        checkpoints[name] = checkpoints[same[0]]
    if name not in checkpoints:
        log(json.dumps({"training": name, "preset": preset, "steps": budget["steps"][preset]}))
        checkpoints[name] = str(_train_method(preset, budget, data_root, out, progress))
    model = load(checkpoints[name])
    steps = 0 if name in NOT_ADAPTED else min(budget["adapt_steps"], model.own_steps)
    gen = metagan_generator(model, steps, select=select, keep_generator=keep_generator)
    return gen, {"checkpoint": checkpoints[name], "checkpoint_sha256": sha256(resolve(checkpoints[name])),
                 "preset": preset, "train_steps": model.step, "adapt_steps": steps}


def _weights_changed(info: dict) -> bool:
    """Whether a stored row's checkpoint file is no longer the one it was evaluated with (a re-exported
    `pretrained:` model, a retrained run). Rows stored without the file's hash (written by versions that did
    not record it) are compared by the checkpoint's training step, which they recorded."""
    try:
        if "checkpoint_sha256" in info:
            return sha256(resolve(info["checkpoint"])) != info["checkpoint_sha256"]
        return "train_steps" in info and ckpt.load(info["checkpoint"]).step != info["train_steps"]
    except CheckpointError:
        return True


def _lowdata_arms(name: str, gen, suite: Suite) -> tuple[str, ...] | None:
    """The low-data arms of a method's row; None for a reference row (no classifier: evaluate skips it)."""
    if getattr(gen, "reference", False):
        return None
    return suite.real_only_arms.get(name) or default_arms(gen, suite.kit.augment_arm)


def _lowdata_share(gen, arms: tuple[str, ...], validation: list, data_root, protocol, suite: Suite) -> dict | None:
    """The generated share of a method's batches, chosen on the validation split's classes (never the evaluated
    ones; `validation` caches that split), with the accuracy per share tried; None for a real-only row."""
    if not any("generated" in arm for arm in arms):
        return None
    if not validation:
        validation.append(suite.heldout(data_root, "validation")[0])
    data = validation[0]
    return {"split": "validation", **choose_share(gen, data, chosen_classes(data, protocol), protocol, kit=suite.kit)}


def _seed_accs(entry: dict, protocol) -> dict[str, list[float]]:
    """A row's low-data accuracies at the smallest n per arm and protocol seed so far: its repeats, or the table's
    run; empty for a row without a classifier."""
    if "lowdata_seeds" in entry:
        return {arm: list(acc) for arm, acc in entry["lowdata_seeds"]["acc"].items()}
    low = next(iter(entry["k"].values())).get("lowdata")
    n = str(min(protocol.lowdata_n))
    return {arm: [acc[n]] for arm, acc in low["arms"].items()} if low else {}


def _lowdata_seeds(gen, heldout, classes: list[int], protocol, entry: dict, seeds: int,
                   kit: Classifier = IMAGES) -> dict:
    """Low-data accuracy at the smallest n per arm for protocol seeds 0..seeds-1 (seed 0: the table's run,
    reused), with the row's generated share."""
    n = min(protocol.lowdata_n)
    acc = _seed_accs(entry, protocol)
    share = (entry.get("lowdata_share") or {}).get("share")
    for r in range(min(map(len, acc.values())), seeds):
        p = replace(protocol, seed=protocol.seed + r, lowdata_n=(n,))
        arms = lowdata_accuracy(gen, heldout, classes, p, tuple(acc), share, kit)["arms"]
        for arm in acc:
            acc[arm].append(arms[arm][str(n)])
    return {"n": n, "seeds": list(range(protocol.seed, protocol.seed + seeds)), "share": share, "acc": acc}


_HEADER = ("suite", "budget", "adapt_steps", "select", "keep_generator", "protocol", "feature_net", "heldout", "split",
           "protocol_version")
# folders written before a field existed ran without selection and sampled from the adapted generator
# and on the evaluation split under protocol version 1 (no reference rows, no bootstrap)
_HEADER_DEFAULTS = {"select": 1.0, "keep_generator": False, "split": "evaluation", "protocol_version": 1}


def _header_differences(a: dict, b: dict) -> list[str]:
    """The protocol fields (_HEADER) on which two results dicts differ, compared as stored (tuples as lists)."""
    a, b = (json.loads(json.dumps({key: r.get(key, _HEADER_DEFAULTS.get(key)) for key in _HEADER}))
            for r in (a, b))
    return [key for key in _HEADER if a[key] != b[key]]


def _has_generated_arm(entry: dict) -> bool:
    return any("generated" in arm for k in entry["k"].values() for arm in ((k.get("lowdata") or {}).get("arms") or {}))


def _uses_affine(name: str, entry: dict) -> bool:
    return name == "affine" or any("affine" in arm for k in entry["k"].values()
                                   for arm in ((k.get("lowdata") or {}).get("arms") or {}))


def upgrade_results(results: dict) -> dict:
    """Earlier protocol versions' results as the current one's where the numbers are the same: version 3 changed
    only the low-data arm "affine + generated" (rows without a generated arm carry over from 2), version 4 only the
    affine transform (the `affine` row and every arm with affine change; reference and real-only rows carry over).
    The other rows are dropped, to be measured again. Version 1 is returned as it is."""
    version = results.get("protocol_version")
    if version not in (2, 3) or PROTOCOL_VERSION != 4:
        return results
    kept = {name: m for name, m in results.get("methods", {}).items()
            if not _uses_affine(name, m) and (version == 3 or not _has_generated_arm(m))}
    return {**results, "protocol_version": 4, "upgraded_from": version, "methods": kept}


def _previous_results(path: Path, header: dict) -> dict:
    """Methods of an earlier run in the same folder under the same protocol (upgrade_results applied); another
    protocol is an error."""
    if not path.exists():
        return {}
    prev = upgrade_results(json.loads(path.read_text()))
    differ = _header_differences(prev, header)
    if differ:
        raise ConfigError(f"{path} holds results of another benchmark ({', '.join(differ)} differ); "
                          "choose another --out folder or delete that one")
    return prev.get("methods", {})


def _write(path: Path, text: str) -> None:
    """Replace `path` atomically: a benchmark killed mid-write keeps the results of the methods it finished."""
    ckpt.write_atomic(path, lambda tmp: tmp.write_text(text))


def _in_report_order(methods: dict, known: dict = METHODS) -> dict:
    order = [m for m in known if m in methods] + sorted(set(methods) - set(known))
    return {name: methods[name] for name in order}


def merge_results(dirs: list[str | Path], out: str | Path) -> dict:
    """One report from benchmark folders that ran different methods under the same protocol."""
    out = Path(out)
    parts = [(Path(d), upgrade_results(json.loads((Path(d) / "results.json").read_text()))) for d in dirs]
    merged = {**parts[0][1], "merged_from": [str(d) for d, _ in parts]}
    found: dict[str, Path] = {}
    methods: dict = {}
    for d, r in parts:
        differ = _header_differences(r, merged)
        if differ:
            raise ConfigError(f"{d} was run under another protocol than {parts[0][0]} ({', '.join(differ)} "
                              "differ); only runs of one protocol can be merged")
        for name, m in r["methods"].items():
            if name in found:
                raise ConfigError(f"method {name!r} is in both {found[name]} and {d}; merge folders with "
                                  "different methods")
            found[name], methods[name] = d, m
    suite = get_suite(merged["suite"])
    merged["methods"] = _in_report_order(methods, suite.methods)
    out.mkdir(parents=True, exist_ok=True)
    for name in merged["methods"]:
        grid = found[name] / f"samples-{name}.png"
        if grid.exists() and grid.resolve() != (out / grid.name).resolve():
            shutil.copyfile(grid, out / grid.name)
    _write(out / "results.json", json.dumps(merged, indent=2))
    (out / "results.md").write_text(suite.report(merged))
    suite.plot(merged, out / "metrics.png")
    return merged


def _sample_grid(gen, heldout, protocol, path: Path, invert: bool = True, rows: int = 6, k: int = 5) -> None:
    g = torch.Generator().manual_seed(12345)
    lines = []
    for c in chosen_classes(heldout, protocol)[:rows]:
        support = heldout.images[c][:k]
        pool = (to_model_space(heldout.images[c][k:]),) if getattr(gen, "needs_pool", False) else ()  # real
        fake = gen(to_model_space(support), 10, g, *pool)[:10]
        lines.append(torch.cat([support, from_model_space(fake)]))
    save_grid(path, lines, invert=invert, scale=2)


def _round(v, nd: int = 4):
    return None if v is None else round(float(v), nd)


def report_markdown(results: dict) -> str:
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
              f"{_real_copy(results, shots)} for held-out real images, near 0 for a generator that returns its support. "
              + _interval_note(results) + " Low-data: accuracy of a small CNN over the evaluated classes trained on 5/10/15 real images per class "
              "(the row's first arm: none, affine or generated; every arm in the low-data section). Proto acc: prototypes from K real supports plus generated samples; "
              "± is the 95% confidence half-width over episodes.", ""]
    return "\n".join(lines)


def method_row(name: str, r: dict, metrics, references: dict) -> str:
    """One method's row of a K table: its metric cells, low-data accuracies and prototypical-network accuracy."""
    cells = [_metric_cell(r, x) for x in metrics]
    low = "/".join(f"{r['lowdata_acc'][n]:.3f}" for n in sorted(r["lowdata_acc"], key=int)) \
        if r.get("lowdata_acc") else "-"
    pa = r["protonet_acc"]
    label = f"{name} ({references[name]})" if name in references else name
    return f"| {label} | " + " | ".join(cells) + f" | {low} | {pa['mean']:.3f} ± {pa['ci95']:.3f} |"


def _metric_cell(r: dict, key: str) -> str:
    """A metric as the table shows it: the value [95% bootstrap interval over classes], or (folders of protocol
    version 1) ± the t half-width over draws where one was stored."""
    v = r.get(key)
    if v is None:
        return "-"
    if key in POOLED and r.get("bootstrap") and r.get(key + "_ci95") is not None:  # t over draws, as evaluate stores
        return f"{v:.3f} [{v - r[key + '_ci95']:.3f}, {v + r[key + '_ci95']:.3f}]"
    if r.get(key + "_interval") is not None:
        lo, hi = r[key + "_interval"]
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{v:.3f}" + ("" if r.get(key + "_ci95") is None else f" ± {r[key + '_ci95']:.3f}")


def _interval_note(results: dict) -> str:
    rows = [r for m in results["methods"].values() for r in m["k"].values() if r.get("bootstrap")]
    if rows:
        b = rows[0]["bootstrap"]
        sizes = ", ".join(f"{r['distribution_samples']} at K = {r['k']}" for r in
                          {r["k"]: r for r in rows if r.get("distribution_samples")}.values())
        return (f"Every generative metric: mean over the support draws [95% interval]: FD and KID the t interval "
                "over the support draws (resampling classes repeats them, which raises a pooled distance on every "
                f"resample); the others the basic bootstrap interval over the evaluated classes ({b['resamples']} "
                "resamples, all draws of a class together, the same resamples for every method). FD, KID and PRDC "
                f"use as many generated images per class and draw as the real pool holds ({sizes}).")
    return "FD and fidelity: mean over the support draws ± the 95% confidence half-width (t)."


# the reference table's metrics: the sign of "better" where there is one, and the decimals shown
BESIDE = (("fd", -1, 3), ("fidelity", +1, 3), ("recall", +1, 3), ("coverage", +1, 3), ("copy_ratio", 0, 3))


def _reference_lines(results: dict, shots: list[str], references: dict = REFERENCES,
                     beside: tuple = BESIDE) -> list[str]:
    """Per K: the two reference rows, then every generating method's FD, fidelity, recall, coverage and copy ratio
    (`beside`: (key, sign of better, decimals)) beside `real`'s: value (method - real [95% paired bootstrap
    interval])."""
    methods = results["methods"]
    real = methods.get("real")
    lines = []
    for k in shots:
        base = real and real["k"].get(k)
        if not base or not base.get("bootstrap"):
            continue
        rows = []
        for name, m in methods.items():
            r = m["k"].get(k)
            if not r or r.get("fd") is None:
                continue
            if name in references:
                cells = [f"{r[key]:.{nd}f}" for key, _, nd in beside]
                name = f"{name} ({references[name]})"
            else:
                cells = [_beside_cell(r, base, key, nd) for key, _, nd in beside]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [f"## Against the references, K = {k}", "",
                  "Each method's value, then its difference from `real` (held-out real images: its fidelity is the "
                  "ceiling an honest generator can reach, its copy ratio what real drawings score) with its 95% "
                  "interval: FD ± t over the paired support draws, the others [paired bootstrap over classes]. "
                  "`support-copy` shows what copying scores.", "",
                  "| method | " + " | ".join(LABELS.get(key, key) for key, _, _ in beside) + " |",
                  "|---" * (1 + len(beside)) + "|"]
        lines += rows + [""]
    return lines


def _beside_cell(r: dict, base: dict, key: str, nd: int) -> str:
    """The value, then its difference from the base row with the interval `_paired_cell` gives."""
    return f"{r[key]:.{nd}f} ({_paired_cell(r, base, key, 0, nd, verdict=False)})"


# the paired metrics, the sign of "better" (FD lower, fidelity higher), and the decimals shown
PAIRED = (("fd", -1, 3), ("fidelity", +1, 4))
# column headings of metrics in the report's tables
LABELS = {"fd": "FD", "fidelity": "fidelity", "recall": "recall", "coverage": "coverage", "copy_ratio": "copy ratio"}


def _paired_cell(a: dict, b: dict, key: str, better: int, nd: int, verdict: bool = True) -> str:
    """a - b. With bootstrap values on both sides (the same resamples) and a metric that is bootstrapped: [basic 95%
    bootstrap interval of the per-resample differences]; otherwise (FD, KID; version 1 folders) the per-draw mean
    ± t half-width. The verdict: better/worse where the interval excludes 0, else tie."""
    if key not in POOLED and a.get(key + "_boot") is not None and a.get("bootstrap") == b.get("bootstrap"):
        diff, (lo, hi) = paired_bootstrap(a, b, key)
        if diff != diff or lo != lo:
            return "undefined (non-finite draws)"
        word = "tie" if lo <= 0 <= hi else ("better" if diff * better > 0 else "worse")
        return f"{diff:+.{nd}f} [{lo:+.{nd}f}, {hi:+.{nd}f}]" + (f" ({word})" if verdict else "")
    diff, half = paired_difference(a[key + "_draws"], b[key + "_draws"])
    if diff != diff:
        return "undefined (non-finite draws)"
    if len(a[key + "_draws"]) < 2:
        return f"{diff:+.{nd}f} (one draw: no interval)"
    word = "tie" if abs(diff) <= half else ("better" if diff * better > 0 else "worse")
    return f"{diff:+.{nd}f} ± {half:.{nd}f}" + (f" ({word})" if verdict else "")


def _paired_lines(results: dict, shots: list[str], references: dict = REFERENCES, paired: tuple = PAIRED) -> list[str]:
    """Each metagan method against each other generating method of the folder, per K: the paired difference of
    FD and of fidelity over the support draws (the same classes, draws and seeds for every method), mean ± 95%
    half-width (t). "better"/"worse" where the interval excludes 0, else "tie"."""
    methods = results["methods"]
    ours = [n for n in methods if n.startswith("metagan-")]
    others = [n for n in methods if not n.startswith("metagan-") and n not in references]  # those: their own section
    lines = []
    for k in shots:
        rows, draws, boot = [], 0, None
        for a in ours:
            for b in others:
                ra, rb = methods[a]["k"].get(k), methods[b]["k"].get(k)
                if not ra or not rb or ra.get("fd_draws") is None or rb.get("fd_draws") is None:
                    continue  # not evaluated at this K, or a method without generated images
                cells = [_paired_cell(ra, rb, *spec) for spec in paired]
                draws = len(ra["fd_draws"])
                if ra.get("fidelity_boot") is not None and ra.get("bootstrap") == rb.get("bootstrap"):
                    boot = ra["bootstrap"]["resamples"]
                rows.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
        if rows:
            rest = "fidelity" if [key for key, _, _ in paired] == ["fd", "fidelity"] else "the others"
            how = (f"FD ± 95% half-width (t over the {draws} draws); {rest} [basic 95% interval of the per-resample "
                   f"differences, paired bootstrap over classes, {boot} resamples]" if boot else
                   f"± 95% half-width (t, {draws} draws)")
            lines += [f"## Paired differences, K = {k}", "",
                      f"Method minus baseline over the same classes, support draws and seeds, mean {how}; "
                      "better/worse where the interval excludes 0.", "",
                      "| method | against | " + " | ".join(
                          f"{LABELS.get(key, key)} difference ({'lower' if better < 0 else 'higher'} is better)"
                          for key, better, _ in paired) + " |", "|---" * (2 + len(paired)) + "|"] + rows + [""]
    return lines


AFFINE_TEXT = "affine: each real image under a fresh random affine transform in every batch"


def _lowdata_lines(results: dict, arms: tuple[str, ...] = ARMS, augmentation: str = AFFINE_TEXT) -> list[str]:
    """Every low-data arm side by side (accuracy at each n), with each row's generated share and the validation
    accuracy per share it was chosen by. augmentation: what the classic-augmentation arm does."""
    rows, ns = [], ""
    for name, m in results["methods"].items():
        low = next((r["lowdata"] for r in m["k"].values() if r.get("lowdata")), None)
        if not low:  # a reference row, or a row stored before the arms
            continue
        cells = []
        for arm in arms:
            acc = low["arms"].get(arm)
            ns = "/".join(sorted(acc, key=int)) if acc else ns
            cells.append("/".join(f"{acc[n]:.3f}" for n in sorted(acc, key=int)) if acc else "-")
        chosen = m.get("lowdata_share")
        share = "-" if low["share"] is None else f"{low['share']:g}" + (
            " (" + ", ".join(f"{s}: {a:.3f}" for s, a in chosen["acc"].items()) + ")" if chosen else " (default)")
        rows.append(f"| {name} | {share} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    updates = results["protocol"].get("lowdata_updates")
    return [f"## Low-data arms (n = {ns} real images per class)", "",
            f"Every arm trains the same classifier for {updates} updates of 64 images from the same initialisation, "
            f"on the same split of each class. {augmentation}; generated: that share of each batch drawn from the "
            "method's generated examples, the share chosen on validation classes (accuracy per share tried in "
            "brackets).", "",
            "| method | generated share | " + " | ".join(arms) + " |", "|---" * (2 + len(arms)) + "|"] + rows + [""]


def _spread_arms(name: str, spread: dict) -> dict[str, list[float]]:
    """A row's repeats per arm; a row stored before the arms holds one list, its only arm."""
    if isinstance(spread["acc"], dict):
        return spread["acc"]
    return {"none" if name == "no-augmentation" else "generated": spread["acc"]}


def _gain(acc: list[float], base: list[float] | None) -> str:
    """Paired gain in points over a reference arm on the seeds both ran: mean ± 95% half-width (t)."""
    if base is None:
        return "-"
    common = min(len(acc), len(base))
    diff, half = paired_difference(acc[:common], base[:common])
    return f"{100 * diff:+.1f} ± {100 * half:.1f} ({common} seeds)"


def _spread_lines(results: dict, augmented: str = "affine") -> list[str]:
    """The low-data repeats (`--lowdata-seeds`): each arm's accuracy per protocol seed, its paired gain over
    "none" (the no-augmentation row) and, for the generated arms, over the classic-augmentation arm (`augmented`:
    the row and arm "affine" for images)."""
    spread = {name: m["lowdata_seeds"] for name, m in results["methods"].items() if "lowdata_seeds" in m}
    if not spread:
        return []
    arms = {name: _spread_arms(name, sp) for name, sp in spread.items()}
    none, affine = arms.get("no-augmentation", {}).get("none"), arms.get(augmented, {}).get(augmented)
    lines = [f"## Low-data spread (n = {next(iter(spread.values()))['n']}, repeated over protocol seeds)", "",
             "Gains in points, paired over the same classes, splits and classifier streams: mean of the per-seed "
             "differences ± 95% half-width (t).", "",
             f"| method | arm | seeds | accuracy per seed | gain over none | gain over {augmented} |", "|---" * 6 + "|"]
    for name, sp in spread.items():
        seeds = f"{sp['seeds'][0]}-{sp['seeds'][-1]}"
        for arm, acc in arms[name].items():
            over_none = _gain(acc, none) if arm != "none" else "-"
            over_affine = _gain(acc, affine) if "generated" in arm else "-"
            lines.append(f"| {name} | {arm} | {seeds} | " + ", ".join(f"{a:.3f}" for a in acc)
                         + f" | {over_none} | {over_affine} |")
    return lines + [""]


def _real_copy(results: dict, shots: list[str]) -> str:
    """Held-out real images' copy ratio, per K (it falls as K grows: more supports, a nearer nearest one)."""
    cells = []
    for k in shots:
        ratios = [m["k"][k]["copy_ratio_real"] for m in results["methods"].values()
                  if m["k"].get(k, {}).get("copy_ratio_real") is not None]
        if ratios:
            cells.append(f"{ratios[0]:.2f} at K = {k}")
    return ", ".join(cells) or "about 1"


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
