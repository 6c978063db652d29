"""The dialogue benchmark: every method on the same held-out topics, support draws and metrics; one report.

    >>> results = run_suite("results/dialogue", budget="full")    # results.json, results.md
    $ metagan benchmark --suite dialogue --budget full --out results/dialogue

For each held-out topic (tasks.make_split's evaluation topics), K in the budget's shots and support draw: K
exchanges of the topic's support pool are the support set; every method answers the topic's query prompts (the
`real` reference row: for each query prompt a different reply of the topic's real pool, tasks.heldout_parts,
drawn with the row's seeded generator; never a reference, a support or classifier data). The metrics of a
(topic, K, draw): BLEU and chrF against the query replies, per-byte perplexity of the query replies
(the adapted model at z = 0; models only), distinct-1/2 and self-BLEU of the replies, topic fidelity (the share of
replies a character n-gram classifier, trained on the held-out topics' classifier-part replies, assigns to the
topic), language identification (the share a classifier trained on training topics' replies assigns to the topic's
language), copy rate (the share equal to a support reply) and the adaptation time. All text is compared as the
models see it: cut to data.reply_len - 1 bytes.

Every trained method has one run per training seed of the budget (runs/<run>-s<seed>; the meta-learners start from
the joint run of their seed, WARM). Intervals: basic 95% bootstrap over topics, support draws and training seeds (a
resample draws topics with replacement and one of each topic's (seed, draw) cells), the same resamples for every
method, so differences between methods are paired.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..evaluate import _basic_interval
from .baselines import retrieve, support_copy
from .config import apply_overrides, get_preset
from .data import load_corpus
from .metrics import TextClassifier, bleu, chrf, copy_rate, distinct, self_bleu
from .tasks import encode, heldout_parts, make_split, support_draws
from .tokens import decode, encode_reply
from .train import adapt, build_system, model_threads, nll_bytes, read, reply_tokens, train

# trained runs: name -> preset; methods: name -> (run, adapted?); WARM: run -> the run (same seed) it starts from
RUNS = {"joint": "dialogue-joint", "lm-fomaml": "dialogue-lm-fomaml", "gan-fomaml": "dialogue-gan-fomaml",
        "gan-metasgd": "dialogue-gan-metasgd"}
WARM = {"lm-fomaml": "joint", "gan-fomaml": "joint", "gan-metasgd": "joint"}
MODELS = {"no-adapt": ("joint", False), "finetune": ("joint", True), "lm-fomaml": ("lm-fomaml", True),
          "gan-fomaml": ("gan-fomaml", True), "gan-metasgd": ("gan-metasgd", True)}
METHODS = ("real", "support-copy", "retrieval", *MODELS)
PROTOCOL = 2  # 2: the held-out cut with a real pool (the `real` row is no longer the references themselves)
KEYS = ("bleu", "chrf", "ppl", "distinct1", "distinct2", "self_bleu", "fidelity", "langid", "copy")
BUDGETS = {
    "small": {"shots": (1, 5), "draws": 1, "boot": 200, "seeds": (0,),
              "overrides": ("train.steps=2", "train.ckpt_every=2", "model.hidden=8", "model.embed=4",
                            "data.prompt_len=12", "data.reply_len=12", "task.meta_batch=2")},
    "full": {"shots": (1, 5, 10), "draws": 2, "boot": 1000, "seeds": (0, 1, 2), "overrides": ()},
}
COMPARE = (("gan-fomaml", "finetune"), ("gan-fomaml", "lm-fomaml"), ("gan-metasgd", "finetune"),
           ("gan-metasgd", "lm-fomaml"), ("gan-fomaml", "retrieval"), ("gan-metasgd", "retrieval"),
           ("lm-fomaml", "finetune"))


def _cut(text: str, lr: int) -> str:
    return decode(encode_reply(text, lr))


def run_suite(out: str | Path, budget: str = "full", source: str = "chatterbot", methods=None, topics=None,
              log=print) -> dict:
    """Measure `methods` (default all) on the held-out topics; results.json holds per-(topic, K, draw) metrics
    and resumes; results.md the report. topics: a list of data.Topic instead of reading `source`."""
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; budgets are: {', '.join(BUDGETS)}")
    unknown = set(methods or []) - set(METHODS)
    if unknown:
        raise ConfigError(f"unknown methods {sorted(unknown)}; the dialogue suite's methods are: {', '.join(METHODS)}")
    b = BUDGETS[budget]
    overrides = [*b["overrides"], f"data.source={source}"]
    cfg = apply_overrides(get_preset(RUNS["joint"]), overrides)
    topics = topics if topics is not None else load_corpus(None if source == "chatterbot" else source)
    split = make_split(topics, cfg.data.min_exchanges, cfg.data.split_seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = {"protocol": PROTOCOL, "source": source, "budget": budget, "overrides": overrides,
              "shots": list(b["shots"]), "draws": b["draws"], "seeds": list(b["seeds"]),
              "topics": [t.name for t in split["eval"]]}
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"header": header, "per": {}}
    if results["header"] != header:
        old = results["header"]
        raise ConfigError(f"{out} holds results of another protocol (version {old.get('protocol', 1)}, budget "
                          f"{old.get('budget')}); use a new --out folder")
    results["split"] = {k: len(v) for k, v in split.items()}
    ctx = _context(split, cfg.data.reply_len)
    for name in [m for m in METHODS if not methods or m in methods]:
        if name in results["per"]:
            continue
        t0 = time.perf_counter()
        rows = []
        for seed in b["seeds"]:  # a model method: one trained run per seed; the others repeat (deterministic)
            model = _model(name, overrides, topics, out, log, seed) if name in MODELS else None
            with model_threads(cfg):
                rows += [{**_measure(name, model, held, k, d, sup, ctx, cfg.data.reply_len), "seed": seed}
                         for held in ctx["held"] for k in b["shots"]
                         for d, sup in enumerate(support_draws(len(held.pool), k, b["draws"], 0))]
        results["per"][name] = rows
        path.write_text(json.dumps(results))
        log(f"dialogue {name}: {time.perf_counter() - t0:.0f} s")
    (out / "results.md").write_text(report(results, b["boot"]))
    return results


def _context(split: dict, lr: int) -> dict:
    """Held-out topics' parts and the two classifiers (topic: held-out classifier-part replies; language: up to
    200 replies of every training topic)."""
    held = [heldout_parts(t, 0, real_pool=True) for t in split["eval"]]
    texts = [(_cut(r, lr), h.topic.name) for h in held for _, r in h.classifier]
    lang = [(_cut(r, lr), t.language) for t in split["train"] for _, r in t.exchanges[:200]]
    return {"held": held, "topic_clf": TextClassifier(*map(list, zip(*texts))),
            "lang_clf": TextClassifier(*map(list, zip(*lang)))}


def _run(run_name: str, overrides, topics, out: Path, log, seed: int) -> Path:
    """runs/<run>-s<seed>: trained once (train.seed = seed), after the run it warm-starts from (WARM)."""
    run = out / "runs" / f"{run_name}-s{seed}"
    if not (run / "best.safetensors").is_file():
        extra = [f"train.seed={seed}"]
        if run_name in WARM:
            extra.append(f"train.init_from={_run(WARM[run_name], overrides, topics, out, log, seed)}")
        cfg = apply_overrides(get_preset(RUNS[run_name]), [*overrides, *extra])
        tmp = train(cfg, out / "runs" / "tmp", name=f"{run_name}-s{seed}", topics=topics, log=log)  # split as above
        tmp.rename(run)
    return run


def _model(name: str, overrides, topics, out: Path, log, seed: int = 0):
    """(system, meta-parameters, adaptation steps) of a model method at training seed `seed`."""
    run_name, adapted = MODELS[name]
    run = _run(run_name, overrides, topics, out, log, seed)
    cfg, _, meta, _ = read(run)
    steps = (cfg.train.adapt_steps or cfg.meta.inner_steps) if adapted else 0
    return build_system(cfg), meta, steps


def _measure(name: str, model, held, k: int, draw: int, sup: list[int], ctx: dict, lr: int) -> dict:
    support = [held.pool[i] for i in sup]
    prompts = [p for p, _ in held.query]
    refs = [_cut(r, lr) for _, r in held.query]
    s_replies = [_cut(r, lr) for _, r in support]
    row = {"topic": held.topic.name, "k": k, "draw": draw, "ppl": math.nan, "adapt_ms": math.nan}
    seed = (sum(held.topic.name.encode()) * 101 + k) * 11 + draw
    if name == "real":
        hyps = real_replies(held, len(prompts), torch.Generator().manual_seed(seed), lr)
    elif name == "support-copy":
        hyps = support_copy(s_replies, len(prompts))
    elif name == "retrieval":
        hyps = retrieve([p for p, _ in support], s_replies, prompts)
    else:
        system, meta, steps = model
        d = system.cfg.data
        t0 = time.perf_counter()
        s_rows = encode(support, d.prompt_len, d.reply_len)
        pg, _ = adapt(system, meta, s_rows, steps, torch.Generator().manual_seed(seed))
        row["adapt_ms"] = 1000 * (time.perf_counter() - t0)
        rows = encode(held.query, d.prompt_len, d.reply_len)
        total, count = nll_bytes(system, pg, rows, s_rows)
        row["ppl"] = math.exp(total / max(count, 1))
        toks = reply_tokens(system, pg, rows[:, :d.prompt_len], torch.Generator().manual_seed(seed + 1),
                            support=s_rows)
        hyps = [decode(t) for t in toks]
    lang = held.topic.language
    row.update(bleu=bleu(hyps, refs, lang), chrf=chrf(hyps, refs), distinct1=distinct(hyps, 1, lang),
               distinct2=distinct(hyps, 2, lang), self_bleu=self_bleu(hyps, lang),
               fidelity=ctx["topic_clf"].accuracy(hyps, held.topic.name),
               langid=ctx["lang_clf"].accuracy(hyps, lang), copy=copy_rate(hyps, s_replies),
               examples=[[p, h] for p, h in zip(prompts[:2], hyps[:2])])
    return row


def real_replies(held, n: int, g: torch.Generator, lr: int) -> list[str]:
    """The `real` row's n replies: n different exchanges of held.real (the topic's real pool, disjoint from its
    supports, query and classifier part) in an order drawn with g, cut to lr - 1 bytes; reply i answers nothing
    in particular: it is a real reply of the topic set beside query prompt i."""
    if len(held.real) < n:
        raise ConfigError(f"topic {held.topic.name}: its real pool has {len(held.real)} exchanges for {n} query "
                          "prompts; cut the held-out parts with tasks.heldout_parts(..., real_pool=True)")
    return [_cut(held.real[i][1], lr) for i in torch.randperm(len(held.real), generator=g)[:n].tolist()]


def _resample_rows(rows: list[dict], k: int, n: int) -> list[list[int]]:
    """n bootstrap resamples of the rows at shot k (indices into rows): topics with replacement, one of each topic's
    (training seed, support draw) cells; a stream fixed by (k, the topics, cells per topic), so every method is
    resampled the same way (paired: every method's rows come in the same order)."""
    topics = sorted({r["topic"] for r in rows})
    by = [[i for i, r in enumerate(rows) if r["topic"] == t and r["k"] == k] for t in topics]
    draws = torch.tensor([len(b) for b in by])
    g = torch.Generator().manual_seed(17 + k)
    pick = torch.randint(len(topics), (n, len(topics)), generator=g)                   # (n, topics)
    which = (torch.rand(n, len(topics), generator=g) * draws[pick]).long()             # a draw of each picked topic
    return [[by[t][d] for t, d in zip(ts, ds)] for ts, ds in zip(pick.tolist(), which.tolist())]


def _mean(rows: list[dict], idx: list[int], key: str) -> float:
    vals = [rows[i][key] for i in idx if rows[i][key] == rows[i][key]]
    return sum(vals) / len(vals) if vals else math.nan


def summary(rows: list[dict], k: int, key: str, boots: int, other: list[dict] | None = None,
            resamples: list[list[int]] | None = None):
    """(point, [lo, hi]) of the mean of `key` at shot k (minus `other`'s, paired, when given); resamples: those of
    _resample_rows for these rows and k (computed when not given)."""
    idx = [i for i, r in enumerate(rows) if r["k"] == k]
    diff = (lambda ix: _mean(rows, ix, key) - _mean(other, ix, key)) if other else (lambda ix: _mean(rows, ix, key))
    point = diff(idx)
    if point != point:
        return point, [math.nan, math.nan]
    resamples = resamples if resamples is not None else _resample_rows(rows, k, boots)
    return point, _basic_interval(point, [diff(ix) for ix in resamples])


def _cell(point: float, iv) -> str:
    if point != point:
        return "–"
    return f"{point:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]" if iv[0] == iv[0] else f"{point:.3f}"


def report(results: dict, boots: int = 1000) -> str:
    """Markdown: one table per K (mean and basic 95% bootstrap interval), the paired comparisons, examples."""
    h, per = results["header"], results["per"]
    cells_of = lambda rows: [(r["topic"], r["k"], r["draw"], r.get("seed", 0)) for r in rows]  # noqa: E731
    if any(cells_of(rows) != cells_of(next(iter(per.values()))) for rows in per.values()):
        raise ConfigError("the methods' results cover different (topic, K, draw) cells; rerun in a new --out folder")
    lines = ["# Dialogue: replies adapted to held-out topics of the chatterbot corpus", "",
             f"Budget {h['budget']}; {len(h['topics'])} held-out topics; {h['draws']} support draws per topic and K; "
             f"training seeds {h.get('seeds', [0])}; split {results.get('split')}. Each cell: mean over topics, "
             f"draws and seeds, basic 95% bootstrap interval ({boots} resamples: topics with replacement, one of "
             "each topic's (seed, draw) cells). BLEU, chrF, self-BLEU: 0-100; ppl: per byte. `real`: for each query "
             "prompt a different real reply of the topic, from its real pool (never a reference, a support or "
             f"classifier data; protocol {h.get('protocol', 1)}).", ""]
    for k in h["shots"]:
        lines += [f"## K = {k}", "", "| method | " + " | ".join(KEYS) + " | adapt ms (median) |",
                  "|---|" + "---|" * (len(KEYS) + 1)]
        first = next(iter(per.values()))
        res = _resample_rows(first, k, boots)  # every method's rows share the order of `first`
        for name in [m for m in METHODS if m in per]:
            ms = [r["adapt_ms"] for r in per[name] if r["k"] == k and r["adapt_ms"] == r["adapt_ms"]]
            cells = [_cell(*summary(per[name], k, key, boots, resamples=res)) for key in KEYS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {statistics.median(ms):.0f} |" if ms else
                         f"| {name} | " + " | ".join(cells) + " | – |")
        pairs = [(a, b) for a, b in COMPARE if a in per and b in per]
        if pairs:
            lines += ["", f"Paired differences at K = {k} (basic 95% bootstrap interval):", ""]
            for a, b in pairs:
                cells = ", ".join(f"{key} {_cell(*summary(per[a], k, key, boots, per[b], res))}"
                                  for key in ("bleu", "fidelity", "copy"))
                lines.append(f"- {a} - {b}: {cells}")
        if len(h.get("seeds", [0])) > 1:
            lines += ["", f"Per training seed at K = {k} (bleu / fidelity, mean over topics and draws):", ""]
            for name in [m for m in MODELS if m in per]:
                lines.append(f"- {name}: " + ", ".join(
                    f"seed {s} " + " / ".join(f"{_mean(per[name], ix, key):.3f}" for key in ("bleu", "fidelity"))
                    for s in h["seeds"]
                    for ix in [[i for i, r in enumerate(per[name]) if r["k"] == k and r.get("seed", 0) == s]]))
        lines.append("")
    lines += ["## Examples (first held-out topic, K = 5, draw 0: prompt -> reply)", ""]
    for name in [m for m in METHODS if m in per]:
        for r in per[name]:
            if r["k"] == 5 and r["draw"] == 0 and r.get("seed", 0) == 0 and r["topic"] == h["topics"][0]:
                lines += [f"- {name}: " + " | ".join(f"{p!r:.60} -> {x!r:.60}" for p, x in r["examples"])]
                break
    return "\n".join(lines) + "\n"
