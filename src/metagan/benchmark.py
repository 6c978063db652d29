"""`metagan benchmark --suite omniglot --budget small|full --out DIR`: baselines and presets in one harness.

Trains what needs training (each meta-learner preset and the jointly pre-trained baseline) into
DIR/runs/ unless checkpoints are given, evaluates every method at every K with the same protocol and the
same adaptation budget, and writes DIR/results.json, DIR/results.md, DIR/metrics.png (bar charts) and
DIR/samples-<method>.png (each row a held-out class: 5 real images, then generated samples).

A run resumes: methods already in DIR/results.json under the same protocol (and with the same checkpoint
file: its sha256 is stored) are kept, so a killed run goes on where it stopped; methods of the folder that a call does not name stay in it.
Methods split over several processes (`--methods`, one DIR each) are combined into one report by
`merge_results` (`metagan benchmark --merge DIR ... --out DIR`).
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from . import __version__
from . import checkpoint as ckpt
from .adapt import check_select, load
from .baselines import affine_augmenter, metagan_generator, scratch_model
from .checkpoint import PRETRAINED_PREFIX, pretrained_names, resolve
from .config import DataConfig, apply_overrides, get_preset
from .data import build_datasets, files_inverted, from_model_space, save_grid, to_model_space
from .errors import CheckpointError, ConfigError
from .evaluate import PROTOCOLS, chosen_classes, evaluate, lowdata_accuracy, paired_difference
from .metrics.features import ASSET, load_feature_net, sha256
from .plots import plot_results
from .train import train

# method -> (preset to train, or None), in report order. pretrain-only is pretrain-finetune's model used without
# adaptation (0 steps: the conditional generator transforms the K shots as it is, DAGAN's use)
METHODS = {
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


def _train_method(preset: str, budget: dict, data_root: str | None, out: Path, progress: bool) -> Path:
    cfg = get_preset(preset)
    overrides = [f"train.steps={budget['steps'][preset]}", f"task.meta_batch={budget['meta_batch']}",
                 "train.sample_every=0", "train.ckpt_every=500"]
    if data_root:
        overrides.append(f"data.root={data_root}")
    return train(apply_overrides(cfg, overrides), out_dir=out / "runs", name=preset, progress=progress)


def run_benchmark(suite: str, budget_name: str, out: str | Path, data_root: str | None = None,
                  checkpoints: dict[str, str] | None = None, methods: list[str] | None = None,
                  shots: tuple[int, ...] = SHOTS, progress: bool = True, log=print, lowdata_seeds: int = 1,
                  select: float = 1.0, keep_generator: bool = False) -> dict:
    """select > 1: every GAN method samples with selection by its adapted discriminator (the n of select x n
    candidates it rates most real, AdaptedGenerator.sample); part of the protocol, so a folder holds one value.
    keep_generator: every GAN method adapts as usual and samples from its generator before adaptation (with
    selection: its adapted discriminator chooses among them); part of the protocol too.
    lowdata_seeds > 1: the low-data cell at the smallest n is repeated with protocol seeds 0..lowdata_seeds-1
    (each class's split into training and test images, and the classifier's initialisation; the same classes;
    seed 0 is the table's run) and stored per method as "lowdata_seeds"; the report gives each method's paired
    gain over no augmentation with its interval. A kept method (resumed folder) gets only the missing repeats."""
    if lowdata_seeds < 1:
        raise ConfigError(f"--lowdata-seeds must be at least 1 (1 = the single run of the table), got {lowdata_seeds}")
    check_select(select, "--select")
    if suite != "omniglot":
        raise ConfigError(f"unknown suite {suite!r}; suites are: omniglot")
    if budget_name not in BUDGETS:
        raise ConfigError(f"unknown budget {budget_name!r}; budgets are: {', '.join(BUDGETS)}")
    unknown = set(methods or []) - set(METHODS)
    if unknown:
        raise ConfigError(f"unknown methods {sorted(unknown)}; methods are: {', '.join(METHODS)}")
    budget, protocol = BUDGETS[budget_name], PROTOCOLS[BUDGETS[budget_name]["protocol"]]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = dict(checkpoints or {})
    data_cfg = DataConfig(source="omniglot", image_size=28, root=data_root)
    _, heldout = build_datasets(data_cfg)
    net = load_feature_net()
    results: dict = {"suite": suite, "budget": budget_name, "adapt_steps": budget["adapt_steps"], "select": select,
                     "keep_generator": keep_generator,
                     "protocol": asdict(protocol), "feature_net": {"file": ASSET.name, "sha256": sha256(ASSET)},
                     "metagan_version": __version__, "torch": torch.__version__, "machine": platform.machine(),
                     "heldout": f"Omniglot evaluation split, {heldout.num_classes} classes", "methods": {}}
    previous = _previous_results(out / "results.json", results)
    requested = methods or list(METHODS)
    # the folder's other methods stay in its results.json (same protocol, checked above)
    results["methods"] = {name: m for name, m in previous.items() if name not in requested}
    classes = chosen_classes(heldout, protocol)
    for name in requested:
        done = previous.get(name)
        keep = done and set(map(str, shots)) <= set(done["k"]) and (
            name not in checkpoints or done["info"].get("checkpoint") == checkpoints[name]) and not (
            _weights_changed(done["info"]))
        if keep and "checkpoint" in done["info"]:  # its repeats, and a later method of the same preset, use it
            checkpoints[name] = done["info"]["checkpoint"]
        if keep and len(_seed_accs(done, protocol)) >= lowdata_seeds:
            results["methods"][name] = done
            log(json.dumps({"kept": name, "from": str(out / "results.json")}))
            continue
        t0 = time.perf_counter()
        gen, info = _method_generator(name, budget, checkpoints, data_root, out, progress, log, select,
                                      keep_generator)
        if keep:  # evaluated before: only the low-data repeats are missing
            entry = done
            log(json.dumps({"kept": name, "from": str(out / "results.json"), "adding": "lowdata_seeds"}))
        else:
            train_s = time.perf_counter() - t0
            low = lowdata_accuracy(gen, heldout, classes, protocol)
            per_k = {str(k): evaluate(gen, heldout, k, net, protocol, lowdata=low) for k in shots}
            info.update({"train_seconds": round(train_s, 1),
                         "eval_seconds": round(time.perf_counter() - t0 - train_s, 1)})
            entry = {"info": info, "k": per_k}
            if gen is not None:
                _sample_grid(gen, heldout, protocol, out / f"samples-{name}.png", files_inverted(data_cfg))
            log(json.dumps({"method": name, **info,
                            **{f"k{k}_{m}": _round(per_k[str(k)][m]) for k in shots for m in ("fd", "fidelity")}}))
        if lowdata_seeds > 1:
            entry["lowdata_seeds"] = _lowdata_seeds(gen, heldout, classes, protocol, entry, lowdata_seeds)
            log(json.dumps({"method": name, "lowdata_seeds": entry["lowdata_seeds"]}))
        results["methods"][name] = entry
        (out / "results.json").write_text(json.dumps(results, indent=2))
    results["methods"] = _in_report_order(results["methods"])
    (out / "results.json").write_text(json.dumps(results, indent=2))  # and kept methods after the last evaluated one
    (out / "results.md").write_text(report_markdown(results))
    plot_results(results, out / "metrics.png")
    return results


def _method_generator(name: str, budget: dict, checkpoints: dict, data_root, out: Path, progress: bool, log,
                      select: float = 1.0, keep_generator: bool = False):
    """The few-shot generator of a method (None for no augmentation), training its preset first when the
    budget has no shipped model for it and no checkpoint was given; and what to record about it."""
    preset = METHODS[name]
    info: dict = {}
    if name == "no-augmentation":
        gen = None
    elif name == "affine":
        gen = affine_augmenter()
    elif name == "gan-from-scratch":
        gen = metagan_generator(scratch_model(get_preset("omniglot-dawson")), budget["adapt_steps"],
                                use_ema=False, select=select, keep_generator=keep_generator)
        info["config"] = "omniglot-dawson architecture (unconditional), random init"
    else:
        if name not in checkpoints and budget["pretrained"] and preset in pretrained_names():
            checkpoints[name] = PRETRAINED_PREFIX + preset
        same = [m for m in checkpoints if m != name and METHODS.get(m) == preset]
        if name not in checkpoints and same:  # another method's model of the same preset (trained above)
            checkpoints[name] = checkpoints[same[0]]
        if name not in checkpoints:
            log(json.dumps({"training": name, "preset": preset, "steps": budget["steps"][preset]}))
            checkpoints[name] = str(_train_method(preset, budget, data_root, out, progress))
        model = load(checkpoints[name])
        steps = 0 if name in NOT_ADAPTED else budget["adapt_steps"]
        gen = metagan_generator(model, steps, select=select, keep_generator=keep_generator)
        info.update({"checkpoint": checkpoints[name], "checkpoint_sha256": sha256(resolve(checkpoints[name])),
                     "preset": preset, "train_steps": model.step, "adapt_steps": steps})
    return gen, info


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


def _seed_accs(entry: dict, protocol) -> list[float]:
    """A row's low-data accuracies at the smallest n per protocol seed so far: its repeats, or the table's run."""
    if "lowdata_seeds" in entry:
        return list(entry["lowdata_seeds"]["acc"])
    return [next(iter(entry["k"].values()))["lowdata_acc"][str(min(protocol.lowdata_n))]]


def _lowdata_seeds(gen, heldout, classes: list[int], protocol, entry: dict, seeds: int) -> dict:
    """Low-data accuracy at the smallest n for protocol seeds 0..seeds-1 (seed 0: the table's run, reused)."""
    n = min(protocol.lowdata_n)
    acc = _seed_accs(entry, protocol)
    for r in range(len(acc), seeds):
        p = replace(protocol, seed=protocol.seed + r, lowdata_n=(n,))
        acc.append(lowdata_accuracy(gen, heldout, classes, p)[str(n)])
    return {"n": n, "seeds": list(range(protocol.seed, protocol.seed + seeds)), "acc": acc}


_HEADER = ("suite", "budget", "adapt_steps", "select", "keep_generator", "protocol", "feature_net", "heldout")
# folders written before a field existed ran without selection and sampled from the adapted generator
_HEADER_DEFAULTS = {"select": 1.0, "keep_generator": False}


def _header_differences(a: dict, b: dict) -> list[str]:
    """The protocol fields (_HEADER) on which two results dicts differ, compared as stored (tuples as lists)."""
    a, b = (json.loads(json.dumps({key: r.get(key, _HEADER_DEFAULTS.get(key)) for key in _HEADER}))
            for r in (a, b))
    return [key for key in _HEADER if a[key] != b[key]]


def _previous_results(path: Path, header: dict) -> dict:
    """Methods of an earlier run in the same folder under the same protocol; another protocol is an error."""
    if not path.exists():
        return {}
    prev = json.loads(path.read_text())
    differ = _header_differences(prev, header)
    if differ:
        raise ConfigError(f"{path} holds results of another benchmark ({', '.join(differ)} differ); "
                          "choose another --out folder or delete that one")
    return prev.get("methods", {})


def _in_report_order(methods: dict) -> dict:
    order = [m for m in METHODS if m in methods] + sorted(set(methods) - set(METHODS))
    return {name: methods[name] for name in order}


def merge_results(dirs: list[str | Path], out: str | Path) -> dict:
    """One report from benchmark folders that ran different methods under the same protocol."""
    out = Path(out)
    parts = [(Path(d), json.loads((Path(d) / "results.json").read_text())) for d in dirs]
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
    merged["methods"] = _in_report_order(methods)
    out.mkdir(parents=True, exist_ok=True)
    for name in merged["methods"]:
        grid = found[name] / f"samples-{name}.png"
        if grid.exists() and grid.resolve() != (out / grid.name).resolve():
            shutil.copyfile(grid, out / grid.name)
    (out / "results.json").write_text(json.dumps(merged, indent=2))
    (out / "results.md").write_text(report_markdown(merged))
    plot_results(merged, out / "metrics.png")
    return merged


def _sample_grid(gen, heldout, protocol, path: Path, invert: bool, rows: int = 6, k: int = 5) -> None:
    g = torch.Generator().manual_seed(12345)
    lines = []
    for c in chosen_classes(heldout, protocol)[:rows]:
        support = heldout.images[c][:k]
        fake = gen(to_model_space(support), 10, g)
        lines.append(torch.cat([support, from_model_space(fake)]))
    save_grid(path, lines, invert=invert, scale=2)


def _round(v, nd: int = 4):
    return None if v is None else round(float(v), nd)


def report_markdown(results: dict) -> str:
    p = results["protocol"]
    lines = [f"# metagan benchmark: {results['suite']}, budget {results['budget']}", "",
             f"Held-out: {results['heldout']}; {p['classes']} classes, {p['samples']} generated samples per class, "
             f"adaptation budget {results['adapt_steps']} steps for every method"
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
            cells = ["-" if r[x] is None else f"{r[x]:.3f}" + ("" if r.get(x + "_ci95") is None
                                                              else f" ± {r[x + '_ci95']:.3f}")
                     for x in METRICS]
            low = "/".join(f"{r['lowdata_acc'][n]:.3f}" for n in sorted(r["lowdata_acc"], key=int))
            pa = r["protonet_acc"]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {low} | {pa['mean']:.3f} ± {pa['ci95']:.3f} |")
        lines.append("")
    lines += _paired_lines(results, shots)
    lines += _spread_lines(results)
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
              "FD and fidelity: mean over the support draws ± the 95% confidence half-width (t). Low-data: accuracy of a small CNN over the evaluated classes trained on 5/10/15 real images per class "
              "plus the method's generated ones. Proto acc: prototypes from K real supports plus generated samples; "
              "± is the 95% confidence half-width over episodes.", ""]
    return "\n".join(lines)


# the per-draw metrics, the sign of "better" (FD lower, fidelity higher), and the decimals shown
PAIRED = (("fd", -1, 3), ("fidelity", +1, 4))


def _paired_cell(a: dict, b: dict, key: str, better: int, nd: int) -> str:
    diff, half = paired_difference(a[key + "_draws"], b[key + "_draws"])
    if diff != diff:
        return "undefined (non-finite draws)"
    if len(a[key + "_draws"]) < 2:
        return f"{diff:+.{nd}f} (one draw: no interval)"
    verdict = "tie" if abs(diff) <= half else ("better" if diff * better > 0 else "worse")
    return f"{diff:+.{nd}f} ± {half:.{nd}f} ({verdict})"


def _paired_lines(results: dict, shots: list[str]) -> list[str]:
    """Each metagan method against each other generating method of the folder, per K: the paired difference of
    FD and of fidelity over the support draws (the same classes, draws and seeds for every method), mean ± 95%
    half-width (t). "better"/"worse" where the interval excludes 0, else "tie"."""
    methods = results["methods"]
    ours = [n for n in methods if n.startswith("metagan-")]
    others = [n for n in methods if not n.startswith("metagan-")]
    lines = []
    for k in shots:
        rows, draws = [], 0
        for a in ours:
            for b in others:
                ra, rb = methods[a]["k"].get(k), methods[b]["k"].get(k)
                if not ra or not rb or ra.get("fd_draws") is None or rb.get("fd_draws") is None:
                    continue  # not evaluated at this K, or a method without generated images
                cells = [_paired_cell(ra, rb, *spec) for spec in PAIRED]
                draws = len(ra["fd_draws"])
                rows.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
        if rows:
            lines += [f"## Paired differences, K = {k}", "",
                      "Method minus baseline over the same classes, support draws and seeds, mean ± 95% half-width "
                      f"(t, {draws} draws); better/worse where the interval excludes 0.", "",
                      "| method | against | FD difference (lower is better) | fidelity difference (higher is better) |",
                      "|---|---|---|---|"] + rows + [""]
    return lines


def _spread_lines(results: dict) -> list[str]:
    """The low-data repeats (`--lowdata-seeds`): each method's accuracy per protocol seed and its paired gain over
    no augmentation (per-seed differences, mean ± 95% half-width, t) on the seeds both ran."""
    spread = {name: m["lowdata_seeds"] for name, m in results["methods"].items() if "lowdata_seeds" in m}
    if not spread:
        return []
    base = spread.get("no-augmentation")
    n = next(iter(spread.values()))["n"]
    lines = [f"## Low-data spread (n = {n}, repeated over protocol seeds)", "",
             "| method | seeds | accuracy per seed | paired gain over no augmentation (points) |", "|---|---|---|---|"]
    for name, sp in spread.items():
        gain = "-"
        if base is not None and name != "no-augmentation":
            common = min(len(sp["acc"]), len(base["acc"]))
            diff, half = paired_difference(sp["acc"][:common], base["acc"][:common])
            gain = f"{100 * diff:+.1f} ± {100 * half:.1f} ({common} seeds)"
        seeds = f"{sp['seeds'][0]}-{sp['seeds'][-1]}"
        lines.append(f"| {name} | {seeds} | " + ", ".join(f"{a:.3f}" for a in sp["acc"]) + f" | {gain} |")
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
