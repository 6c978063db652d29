"""The benchmark harness every suite runs through: `Suite` (what a domain brings), `run_benchmark` (train, evaluate,
resume, the low-data share and repeats) and `merge_results` (one report from folders of different methods).

A run resumes: methods already in DIR/results.json under the same protocol (and with the same checkpoint file: its
sha256 is stored) are kept, so a killed run goes on where it stopped; methods of the folder that a call does not name
stay in it. The folder's file format (protocol header, upgrades, atomic writes) is metagan.benchmark.results.
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

from .. import __version__
from .. import checkpoint as ckpt
from ..adapt import check_select, load
from ..baselines import metagan_generator
from ..checkpoint import PRETRAINED_PREFIX, pretrained_names, resolve
from ..config import apply_overrides, get_preset
from ..errors import CheckpointError, ConfigError
from ..evaluate import PROTOCOL_VERSION, chosen_classes, evaluate
from ..lowdata import IMAGES, Classifier, choose_share, default_arms, lowdata_accuracy
from ..metrics.features import sha256
from ..train import train
from .results import _header_differences, _in_report_order, _previous_results, _write, upgrade_results

# methods whose model generates without adaptation (0 steps), whatever the budget: jointly trained models, which
# fine-tuning makes worse
NOT_ADAPTED = {"pretrain-only", "metagan-cvae"}


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
SUITES = {"omniglot": "metagan.benchmark.omniglot:OMNIGLOT", "pigcvp": "metagan.series_suite:PIGCVP"}


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


def _round(v, nd: int = 4):
    return None if v is None else round(float(v), nd)
