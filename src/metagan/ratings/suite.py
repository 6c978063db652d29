"""The cold-start benchmark: every method on the same users, seeds and metrics; one report.

    >>> results = run_suite("results/movielens", budget="full")   # results.json, results.md
    $ metagan benchmark --suite movielens-100k --out results/movielens

For each setting (ratings, clicks) and seed: the users are split with that seed (tasks.make_split), the baselines
are fitted and the meta-learned models trained (train.py, validation-best step) on the meta-train users, and every
method scores each test user's 10 query items after seeing only that user's support set. Per-user metrics are
stored, so a folder resumes where it stopped. Intervals: 95% Student t over the seeds' means; comparisons pair the
two methods' per-seed means.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .baselines import augmentation, fit_mf, item_stats, mf_scores
from .config import apply_overrides, get_preset
from .data import Interactions, load_interactions
from .metrics import RANKING, mean_interval, ranking_metrics
from .tasks import Protocol, make_split, rating_scale
from .train import adapt_batch, build_system, cfg_steps, query_scores, read, train
from ..errors import ConfigError

SETTINGS = ("ratings", "clicks")
# method -> (preset, overrides); cf-fomaml is gan-fomaml without its adversarial terms (the GAN's ablation)
TRAINED = {"melu": ("movielens-melu", ()), "gan-maml": ("movielens-gan-maml", ()),
           "gan-fomaml": ("movielens-gan-fomaml", ()), "gan-reptile": ("movielens-gan-reptile", ()),
           "gan-metasgd": ("movielens-gan-metasgd", ()),
           "cf-fomaml": ("movielens-gan-fomaml", ("loss.outer_adv=0", "loss.inner_adv=0"))}
METHODS = ("random", "popularity", "item-mean", "mf", *TRAINED, "mf-aug")
AUG_FROM = "gan-fomaml"  # the generator whose labels enlarge mf-aug's support sets
AUG_ITEMS, AUG_WEIGHT = 50, 0.3
BUDGETS = {"small": {"seeds": 1, "steps": 20}, "full": {"seeds": 3, "steps": 150}}
# RecBole-MetaRec's MovieLens-100K table (nDCG@5, MRR@5 of the 10 query items)
PUBLISHED = {"ratings": {"MeLU": (0.5331, 0.7359), "MAMO": (0.5929, 0.7144), "TaNP": (0.5994, 0.8070)},
             "clicks": {"MetaEmb": (0.7070, 0.8305), "MWUF": (0.7139, 0.8391)}}


def run_suite(out: str | Path, budget: str = "full", source: str = "movielens-100k", methods=None,
              seeds: int | None = None, steps: int | None = None, order: str = "time", log=print) -> dict:
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; budgets are: {', '.join(BUDGETS)}")
    unknown = set(methods or []) - set(METHODS)
    if unknown:
        raise ConfigError(f"unknown methods {sorted(unknown)}; the movielens-100k suite's methods are: "
                          f"{', '.join(METHODS)}")
    methods = [m for m in METHODS if not methods or m in methods]
    seeds = seeds or BUDGETS[budget]["seeds"]
    steps = steps or BUDGETS[budget]["steps"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_interactions(source)
    header = {"source": source, "order": order, "steps": steps}
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"header": header, "per_user": {}}
    if results["header"] != header:
        raise ConfigError(f"{out} holds results of another protocol ({results['header']}); use a new --out folder")
    for setting in SETTINGS:
        for seed in range(seeds):
            _run_seed(data, setting, seed, methods, steps, order, out, results, log)
            path.write_text(json.dumps(results))
    (out / "results.md").write_text(report(results))
    return results


def _run_seed(data: Interactions, setting: str, seed: int, methods, steps: int, order: str, out: Path,
              results: dict, log) -> None:
    clicks = setting == "clicks"
    split = make_split(data, Protocol(order=order, clicks=clicks), seed)
    test, scale = split["test"], rating_scale(data)
    store = results["per_user"].setdefault(setting, {})
    todo = [m for m in methods if str(seed) not in store.get(m, {})]
    if not todo:
        return
    count, mean = item_stats(split["train"], data.n_items)
    mf = fit_mf(split["train"], data.n_items, seed=seed) if {"mf", "mf-aug"} & set(todo) else None
    g = torch.Generator().manual_seed(seed)
    gan_vectors = {}
    for name in todo:
        t0 = time.perf_counter()
        if name == "random":
            scores = [torch.rand(len(t.q_items), generator=g) for t in test]
        elif name == "popularity":
            scores = [count[t.q_items] for t in test]
        elif name == "item-mean":
            scores = [mean[t.q_items] for t in test]
        elif name == "mf":
            scores = [mf_scores(mf, t) for t in test]
        elif name == "mf-aug":
            if AUG_FROM not in gan_vectors:
                system, meta = _trained(data, setting, seed, AUG_FROM, steps, out, order)
                gan_vectors[AUG_FROM] = _vectors(system, meta, test, seed)
            vectors = gan_vectors[AUG_FROM]
            popular = count.argsort(descending=True)
            scores = [mf_scores(mf, t, (*augmentation(v, t, popular, AUG_ITEMS), AUG_WEIGHT))
                      for t, v in zip(test, vectors)]
        else:
            system, meta = _trained(data, setting, seed, name, steps, out, order)
            scores = query_scores(system, meta, test, seed=seed)
            if name == AUG_FROM:
                gan_vectors[name] = _vectors(system, meta, test, seed)
        per = [ranking_metrics(s, t, clicks, scale) for s, t in zip(scores, test)]
        store.setdefault(name, {})[str(seed)] = per
        m = {k: round(sum(p[k] for p in per) / len(per), 4) for k in per[0]}
        log(f"{setting} seed {seed} {name}: {m} ({time.perf_counter() - t0:.0f} s)")


def _trained(data, setting: str, seed: int, method: str, steps: int, out: Path, order: str):
    """Train (or reuse) the run of `method` for this setting and seed; its validation-best meta-parameters."""
    preset, extra = TRAINED[method]
    run = out / "runs" / f"{setting}-{seed}-{method}"
    if not (run / "best.safetensors").is_file():
        cfg = apply_overrides(get_preset(preset), [*extra, f"data.clicks={setting == 'clicks'}",
                                                   f"data.split_seed={seed}", f"train.seed={seed}",
                                                   f"train.steps={steps}",
                                                   f"train.ckpt_every={max(1, steps // 6)}",
                                                   f"data.order={order}"])
        tmp = train(cfg, out / "runs" / "tmp", name=preset, data=data)
        run.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(run)
    cfg, _, meta, _, _ = read(run)
    return build_system(cfg, data.n_items, data), meta


def _vectors(system, meta, tasks, seed: int) -> list[torch.Tensor]:
    out = adapt_batch(system, meta, system.batch(tasks), cfg_steps(system.cfg), torch.Generator().manual_seed(seed))
    return list(out)


def seed_means(per_user: dict[str, list[dict]], key: str) -> list[float]:
    return [sum(p[key] for p in users) / len(users) for _, users in sorted(per_user.items())]


def _cell(values: list[float]) -> str:
    mean, half = mean_interval(values)
    return f"{mean:.4f}" if math.isnan(half) else f"{mean:.4f} ± {half:.4f}"


def report(results: dict) -> str:
    """Markdown: one table per setting (mean ± 95% interval over seeds), the published rows, and the paired
    comparisons of every metagan GAN with MeLU."""
    lines = ["# Cold-start recommendation on MovieLens-100K", "",
             f"Protocol: {json.dumps(results['header'])}. Each cell: mean over seeds ± 95% t interval (per seed: the "
             "mean over that seed's test users).", ""]
    for setting, store in results["per_user"].items():
        keys = [*RANKING, "mae"] if setting == "ratings" else list(RANKING)
        lines += [f"## {setting}", "", "| method | seeds | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        for name in [m for m in METHODS if m in store]:
            cells = [_cell(seed_means(store[name], k)) if k != "mae" or name not in ("random", "popularity")
                     else "–" for k in keys]
            lines.append(f"| {name} | {len(store[name])} | " + " | ".join(cells) + " |")
        for name, (nd, mrr) in PUBLISHED[setting].items():
            lines.append(f"| {name} (RecBole-MetaRec, published) | – | {nd:.4f} | – | {mrr:.4f} | – |"
                         + (" – |" if setting == "ratings" else ""))
        for base in ("melu", "item-mean", "mf"):  # the GANs against MeLU and the item mean; augmentation against mf
            names = ["mf-aug"] if base == "mf" else [m for m in store if m.startswith(("gan-", "cf-", "mf-"))]
            if base not in store:
                continue
            lines += ["", f"Paired with {base} (nDCG@5, per-seed difference of means, 95% t interval):", ""]
            for name in [m for m in names if m in store]:
                common = sorted(set(store[name]) & set(store[base]))
                diffs = [seed_means({s: store[name][s]}, "ndcg@5")[0] - seed_means({s: store[base][s]}, "ndcg@5")[0]
                         for s in common]
                if diffs:
                    lines.append(f"- {name} - {base}: {_cell(diffs)}")
        lines.append("")
    return "\n".join(lines)
