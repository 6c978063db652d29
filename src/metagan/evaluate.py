"""Few-shot generation evaluation on held-out classes, in the shipped feature network's space.

A method is a few-shot generator: `gen(support (K, C, H, W), n, generator) -> (n, C, H, W)`, images in
model space ([-1, 1], ink bright), or None for "no augmentation". Protocol (docs/evaluation.md):

1. `protocol.classes` held-out classes of a split (`split_dataset`), chosen by a seeded permutation; for
   each, `support_draws` seeded support sets of K images; the class's other images are split into the
   metrics' reference (the larger half) and a real pool (the reference row `real` returns it).
2. `samples` generated images per class and draw, each (class, draw) from its own seeded generator.
3. On every draw, pooled over classes: Frechet distance, KID and precision/recall/density/coverage against
   the reference; class fidelity with N-way prototypical classifiers built from the K real supports
   (classes in groups of `n_way`); per class and averaged, diversity and copy ratio. Reported as the mean
   over draws, with a 95% interval from a bootstrap over classes (`bootstrap_indices`, the same resamples
   for every method, so two methods' per-resample differences are paired) and the t half-width over draws.
4. protonet_acc: `episodes` N-way episodes over the chosen classes and draws; prototypes from the K real
   supports plus `proto_generated` generated samples per class; 5 queries per class from the reference.
5. lowdata: a small CNN over the chosen classes trained on n real images per class, with online affine
   augmentation and/or generated images (adapted from those n), for the same number of updates in every arm,
   tested on the class's other images (lowdata.py); lowdata_acc is the method's first arm.

Other domains use the same protocol: a class's examples may be float tensors already in model space (series
(n_i, C, L)), read through data.as_model_space, and a suite adds its own per-draw metrics (`DrawMetrics`), which
get the same draws, bootstrap resamples and intervals as the metrics above.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional

import torch
from scipy.stats import t as student_t
from torch import Tensor, nn

from .data import ClassDataset, as_model_space
from .lowdata import lowdata_accuracy
from .metrics import copy_ratio, diversity
from .metrics.fewshot import distances

FewShotGenerator = Optional[Callable[[Tensor, int, torch.Generator], Tensor]]


@dataclass(frozen=True)
class Protocol:
    classes: int = 20
    samples: int = 50
    support_draws: int = 2
    n_way: int = 20
    episodes: int = 200
    proto_generated: int = 5
    lowdata_n: tuple[int, ...] = (5, 10, 15)
    lowdata_generated: int = 20
    lowdata_updates: int = 100  # Adam updates of the low-data classifier, the same for every arm (lowdata.py)
    lowdata_share: float = 0.5  # generated share of a batch when no validation split chooses it
    lowdata_shares: tuple[float, ...] = (0.25, 0.5, 0.75)  # the shares choose_share tries on validation classes
    bootstrap: int = 100  # resamples of the evaluated classes behind every generative metric's interval
    seed: int = 0


PROTOCOLS = {
    "small": Protocol(),
    "full": Protocol(classes=100, samples=100, support_draws=5, episodes=1000, lowdata_generated=40,
                     lowdata_updates=2000, bootstrap=200),
}
# 2: reference rows (each class's non-support images split into the metrics' reference and the `real` row's
# pool), every metric on every draw, bootstrap intervals over classes. Results without the field are version 1.
# 3: the low-data arm "affine + generated" transforms the generated images too, not only the real ones (rows without
# a generated arm compute the same numbers as under 2: benchmark.upgrade_results keeps them).
# 4: affine augmentation (the `affine` row and every low-data arm with "affine") reads the images bicubically, not
# bilinearly: bilinear resampling blurs strokes, which the feature network tells from drawings (a support copy shifted
# by under half a pixel: FD 1.26 bilinear, 0.28 bicubic), so the version-3 row understated the simple alternative;
# and a model adapts for its own adaptation steps up to the budget's (a model meta-trained for 2 steps is used
# with 2), where every model took the budget's 10.
PROTOCOL_VERSION = 4
SPLITS = ("evaluation", "confirmation", "validation")  # split_dataset
CONFIRMATION = (100, 200)  # positions of the confirmation classes in the held-out class permutation
BOOTSTRAPPED = ("fd", "kid", "precision", "recall", "density", "coverage", "fidelity", "diversity", "copy_ratio")
# Distances between pooled distributions: resampling classes with replacement repeats classes, which raises FD and
# KID on every resample by more than their spread (a percentile interval lay wholly above the value, a basic one
# wholly below it), so their interval is the t interval over support draws and their comparisons pair the draws.
POOLED = ("fd", "kid")


@torch.no_grad()
def embed(net: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    return torch.cat([net(x[i:i + batch].float()) for i in range(0, len(x), batch)])


def ci95(values: list[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t: the support draws are few)."""
    if len(values) < 2:
        return 0.0
    t = torch.tensor(values, dtype=torch.float64)
    return float(student_t.ppf(0.975, len(values) - 1) * t.std() / math.sqrt(len(values)))


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and 95% confidence half-width (t) of the per-draw differences a - b of two methods evaluated on the
    same classes, support draws and generation seeds: the interval for comparing them. It is narrower than either
    method's own interval when both move together from draw to draw (an easier or harder set of supports), which
    is most of the spread of FD here. NaN where a draw of either is undefined."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs the same draws on both sides (got {len(a)} and {len(b)})")
    diffs = [x - y for x, y in zip(a, b)]
    if any(d != d for d in diffs):
        return float("nan"), float("nan")
    return sum(diffs) / len(diffs), ci95(diffs)


def _stream(seed: int, ci: int, di: int) -> int:
    """The seed of class ci's draw di in a stream keyed by `seed`: it depends on nothing a method does."""
    return seed * 1_000_003 + ci * 1009 + di


def chosen_classes(heldout: ClassDataset, protocol: Protocol) -> list[int]:
    """The evaluated held-out classes: the first `protocol.classes` of a seeded permutation."""
    return class_order(heldout.num_classes, protocol.seed)[: protocol.classes]


def class_order(num_classes: int, seed: int = 0) -> list[int]:
    """The seeded permutation of the held-out classes that every split of them is cut from."""
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed)).tolist()


def confirmation_classes(num_classes: int, seed: int = 0) -> list[int]:
    """The `confirmation` split: positions CONFIRMATION of the permutation `chosen_classes` takes its first
    `classes` from (at most 100 in every budget), so disjoint from every budget's evaluated classes."""
    if num_classes < CONFIRMATION[1]:
        raise ValueError(f"the confirmation split needs {CONFIRMATION[1]} held-out classes, got {num_classes}")
    return class_order(num_classes, seed)[CONFIRMATION[0]:CONFIRMATION[1]]


def split_dataset(data_root: str | None, split: str, image_size: int = 28, seed: int = 0) -> ClassDataset:
    """The held-out classes of a split (SPLITS), Omniglot at `data_root` (None: $METAGAN_DATA_DIR or the cache).

    - evaluation: the 659 evaluation-alphabet classes; the protocol evaluates the first `classes` of its
      permutation of them.
    - confirmation: 100 of the same classes that no budget evaluates (`confirmation_classes`), for a last check
      of a design chosen elsewhere.
    - validation: the classes of the 5 background alphabets that data.split=background-val holds out of training
      (data/omniglot.py: VALIDATION_ALPHABETS), for design decisions."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are: {', '.join(SPLITS)}")
    from .config import DataConfig
    from .data import build_datasets
    data_split = "background-val" if split == "validation" else "background"
    heldout = build_datasets(DataConfig(source="omniglot", split=data_split, image_size=image_size,
                                        root=data_root))[1]
    if split != "confirmation":
        return heldout
    pick = confirmation_classes(heldout.num_classes, seed)
    return ClassDataset(f"{heldout.name}/confirmation", [heldout.images[i] for i in pick],
                        [heldout.class_names[i] for i in pick])


def _draws(heldout: ClassDataset, protocol: Protocol, k: int):
    """classes (list of int) and, per class and draw, uint8 (support (k, ...), reference, pool): the K supports;
    the reference images the metrics compare with (the larger half of the class's other images); the real pool
    the `real` row returns (the other half). One seeded stream that no method touches, so every method sees
    the same classes, supports, references and pools."""
    classes = chosen_classes(heldout, protocol)
    g = torch.Generator().manual_seed(protocol.seed + 7)
    draws = []
    for c in classes:
        imgs = heldout.images[c]
        per = []
        for _ in range(protocol.support_draws):
            idx = torch.randperm(len(imgs), generator=g)
            n_pool = (len(imgs) - k) // 2
            per.append((imgs[idx[:k]], imgs[idx[k + n_pool:]], imgs[idx[k:k + n_pool]]))
        draws.append(per)
    return classes, draws


def generate_all(gen: FewShotGenerator, draws, n: int, seed: int) -> list[list[Tensor]]:
    """Generated images per class and draw (model space). Each (class, draw) samples from its own generator,
    seeded from (seed, class, draw) only. A method with `needs_pool` (the `real` reference row) also receives
    the draw's real pool as a fourth argument."""
    needs_pool = getattr(gen, "needs_pool", False)
    out = []
    for ci, per in enumerate(draws):
        row = []
        for di, (support, _, pool) in enumerate(per):
            g = torch.Generator().manual_seed(_stream(seed, ci, di))
            extra = (as_model_space(pool),) if needs_pool else ()
            with torch.no_grad():
                row.append(gen(as_model_space(support), n, g, *extra).float())
        out.append(row)
    return out


def bootstrap_indices(num_classes: int, protocol: Protocol) -> Tensor:
    """(protocol.bootstrap, num_classes) class indices drawn with replacement, from a seeded stream that depends
    on the class count and the protocol only: every method is resampled the same way, so per-resample
    differences between two methods are paired."""
    g = torch.Generator().manual_seed(protocol.seed + 31)
    return torch.randint(num_classes, (protocol.bootstrap, num_classes), generator=g)


def _fingerprint(idx: Tensor) -> str:
    return hashlib.sha256(idx.numpy().tobytes()).hexdigest()[:16]


def _sqdist(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances (N, M) in float64 by matrix products, clamped at 0 (never NaN)."""
    a, b = a.double(), b.double()
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T).clamp_min(0)


def _knn_radius(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    if len(x) <= k:
        raise ValueError(f"prdc needs more than k={k} samples per set, got {len(x)}")
    # the (k+1)-th smallest: the point itself is at distance 0 (topk is much faster than kthvalue here)
    return torch.cat([_sqdist(x[i:i + chunk], x).topk(k + 1, dim=1, largest=False).values[:, k].sqrt()
                      for i in range(0, len(x), chunk)])


def _kernel_blocks(x: Tensor, xl: Tensor, y: Tensor, yl: Tensor, c: int, chunk: int = 2048):
    """Sums of the cubic polynomial kernel (x.y / D + 1)^3 over every block of rows of class a and columns of
    class b (c, c), and of its diagonal per class (c,) when x is y."""
    out = torch.zeros(c, c, dtype=torch.float64)
    diag = torch.zeros(c, dtype=torch.float64)
    same = x is y
    x, y = x.double(), y.double()
    for i in range(0, len(x), chunk):
        kern = (x[i:i + chunk] @ y.T).div_(x.shape[1]).add_(1).pow_(3)
        cols = torch.zeros(len(kern), c, dtype=torch.float64).index_add_(1, yl, kern)
        out.index_add_(0, xl[i:i + chunk], cols)
        if same:
            diag.index_add_(0, xl[i:i + chunk], kern.diagonal(i))
    return out, diag


def _draw_stats(sup: list[Tensor], ref: list[Tensor], gen: list[Tensor], m: int, n_way: int, k: int = 5) -> dict:
    """What one draw's metrics need, from features per class: sufficient statistics for FD, kernel block sums
    for KID, and per class the numerator and denominator of every other metric, so that a resample of the
    classes (weights w (B, C)) is a weighted sum. FD, KID and PRDC use the first m generated images of each class
    (the size of the `real` row's pool: these metrics depend on the sample size); PRDC's k-NN radii are those of
    the whole draw."""
    c, full = len(gen), gen
    gen = [g[:m] for g in gen]
    r, f = torch.cat(ref).double(), torch.cat(gen).double()
    rl = torch.arange(c).repeat_interleave(torch.tensor([len(x) for x in ref]))
    fl = torch.arange(c).repeat_interleave(torch.tensor([len(x) for x in gen]))
    finite = bool(torch.isfinite(torch.cat(full)).all())

    def per_class(values: Tensor, labels: Tensor) -> Tensor:
        return torch.zeros(c, dtype=torch.float64).index_add_(0, labels, values.double())

    def moments(xs: list[Tensor]):  # per class: count (c,), sum (c, D), sum of outer products (c, D, D)
        xs = [x.double() for x in xs]
        return (torch.tensor([float(len(x)) for x in xs], dtype=torch.float64), torch.stack([x.sum(0) for x in xs]),
                torch.stack([x.T @ x for x in xs]))
    st = {"finite": finite, "ref": moments(ref), "gen": moments(gen)}
    if finite:
        st["kid"] = (_kernel_blocks(r, rl, r, rl, c), _kernel_blocks(f, fl, f, fl, c),
                     _kernel_blocks(r, rl, f, fl, c)[0])
        d = _sqdist(r, f).sqrt()  # (N real, M fake)
        r_real, r_fake = _knn_radius(r, k), _knn_radius(f, k)
        inside = d < r_real[:, None]
        n_real, n_fake = per_class(torch.ones(len(r)), rl), per_class(torch.ones(len(f)), fl)
        st["precision"] = (per_class(inside.any(0), fl), n_fake)
        st["density"] = (per_class(inside.sum(0) / k, fl), n_fake)
        st["recall"] = (per_class((d < r_fake[None]).any(1), rl), n_real)
        st["coverage"] = (per_class(d.min(1).values < r_real, rl), n_real)
    ones = torch.ones(c, dtype=torch.float64)
    hits = [h for i in range(0, c, n_way) for h in _hits(full[i:i + n_way], sup[i:i + n_way])]
    st["fidelity"] = (torch.tensor(hits, dtype=torch.float64),
                      torch.tensor([len(x) for x in full], dtype=torch.float64))
    st["diversity"] = (torch.tensor([diversity(g, x) for g, x in zip(full, ref)], dtype=torch.float64), ones)
    st["copy_ratio"] = (torch.tensor([copy_ratio(g, s, x) for g, s, x in zip(full, sup, ref)],
                                     dtype=torch.float64), ones)
    return st


def _hits(fake: list[Tensor], support: list[Tensor]) -> list[int]:
    """Per class of one N-way group: how many of its fakes the prototypical classifier built from the K supports of
    the group's classes assigns to it (metrics.class_fidelity, per class); non-finite fakes are misses."""
    protos = torch.stack([s.mean(0) for s in support])  # (N, D)
    return [int(((distances(f, protos).argmin(1) == c) & torch.isfinite(f).all(1)).sum()) for c, f in enumerate(fake)]


def _fd_weighted(st: dict, w: Tensor) -> Tensor:
    """FD (B,) between the pooled reference and generated features of the classes weighted by w (B, C):
    ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)), covariances with N - 1 (as torchmetrics)."""
    if not st["finite"]:
        return torch.full((len(w),), float("nan"), dtype=torch.float64)
    stats = []
    for count, s, q in (st["ref"], st["gen"]):
        n = w @ count  # (B,)
        mu = (w @ s) / n[:, None]
        cov = (torch.einsum("bc,cij->bij", w, q) - n[:, None, None] * mu[:, :, None] * mu[:, None, :]) / (
            n[:, None, None] - 1)
        stats.append((mu, cov))
    (m1, s1), (m2, s2) = stats
    root = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum(-1)
    return ((m1 - m2) ** 2).sum(-1) + s1.diagonal(dim1=-2, dim2=-1).sum(-1) + s2.diagonal(
        dim1=-2, dim2=-1).sum(-1) - 2 * root


def _kid_weighted(st: dict, w: Tensor) -> Tensor:
    """Unbiased MMD^2 (B,) of the cubic polynomial kernel between the weighted reference and generated sets;
    a class drawn twice contributes its points twice (pairs of a point with its own copy count)."""
    if not st["finite"]:
        return torch.full((len(w),), float("nan"), dtype=torch.float64)
    (bxx, dxx), (byy, dyy), bxy = st["kid"]
    m, n = w @ st["ref"][0], w @ st["gen"][0]

    def quad(b: Tensor) -> Tensor:
        return torch.einsum("bc,cd,bd->b", w, b, w)
    return (quad(bxx) - w @ dxx) / (m * (m - 1)) + (quad(byy) - w @ dyy) / (n * (n - 1)) - 2 * quad(bxy) / (m * n)


@dataclass(frozen=True)
class DrawMetrics:
    """Metrics a suite adds to every support draw, bootstrapped over classes like fidelity.

    stats(draws, fakes) -> one dict per draw {key: (numerator (C,), denominator (C,))}, float64 per evaluated
    class (draws as _draws makes them, fakes as generate_all returns them); the value on classes weighted by
    w (B, C) is transforms[key](w @ num / w @ den), or the ratio itself for a key without a transform.
    """
    keys: tuple[str, ...]
    stats: Callable[[list, list], list[dict]]
    transforms: dict[str, Callable[[Tensor], Tensor]] = field(default_factory=dict)


def _metric_weighted(st: dict, key: str, w: Tensor) -> Tensor:
    if key == "fd":
        return _fd_weighted(st, w)
    if key == "kid":
        return _kid_weighted(st, w)
    if key not in st:  # PRDC of a draw with non-finite samples
        return torch.full((len(w),), float("nan"), dtype=torch.float64)
    num, den, *transform = st[key]
    value = (w @ num) / (w @ den)
    return transform[0](value) if transform else value


def generative_metrics(net, draws, fakes, protocol: Protocol, extra: DrawMetrics | None = None) -> dict:
    """Every generative metric (BOOTSTRAPPED, then extra.keys) on every support draw, reported as the mean over
    draws, with `<key>_draws` (per draw), `<key>_ci95` (t half-width over draws), `<key>_interval` (basic 95%
    bootstrap interval over classes: all draws of a resampled class go together) and `<key>_boot` (the value on
    each resample of `bootstrap_indices`, the same for every method)."""
    n_draws, c = len(draws[0]), len(draws)
    emb = [[[embed(net, as_model_space(per[d][i])) for per in draws] for d in range(n_draws)] for i in range(3)]
    sups, refs, pools = emb
    gens = [[embed(net, row[d]) for row in fakes] for d in range(n_draws)]
    m = min(len(p) for d in range(n_draws) for p in pools[d])  # generated images per class in FD, KID, PRDC
    stats = [_draw_stats(sups[d], refs[d], gens[d], m, protocol.n_way) for d in range(n_draws)]
    idx = bootstrap_indices(c, protocol)
    w = torch.zeros(len(idx), c, dtype=torch.float64).scatter_add_(1, idx, torch.ones(idx.shape, dtype=torch.float64))
    ones = torch.ones(1, c, dtype=torch.float64)
    out: dict = {"bootstrap": {"resamples": len(idx), "over": "classes", "indices_sha256": _fingerprint(idx)},
                 "distribution_samples": m}
    if extra is not None:  # the suite's own per-class sums, each with its transform
        for st, more in zip(stats, extra.stats(draws, fakes), strict=True):
            for key in extra.keys:
                st[key] = (*more[key], extra.transforms[key]) if key in extra.transforms else more[key]
    for key in BOOTSTRAPPED + (extra.keys if extra else ()):
        per_draw = [float(_metric_weighted(st, key, ones)[0]) for st in stats]
        out.update(_over_draws(key, per_draw))
        if key in POOLED:
            out[f"{key}_interval"] = [out[key] - out[f"{key}_ci95"], out[key] + out[f"{key}_ci95"]]
            continue
        boot = torch.stack([_metric_weighted(st, key, w) for st in stats]).mean(0)
        out[f"{key}_interval"] = _basic_interval(out[key], boot.tolist())
        out[f"{key}_boot"] = boot.tolist()
    out.update({
        # adapted generators (class x draw) whose samples are not all finite: their draw's metrics are NaN
        "nonfinite_sets": sum(int(not torch.isfinite(f).all()) for row in fakes for f in row),
        "sets": sum(len(row) for row in fakes),
        # held-out real images (each draw's pool) against the supports and the reference: the real row's value
        "copy_ratio_real": sum(copy_ratio(p, s, r) for d in range(n_draws)
                               for p, s, r in zip(pools[d], sups[d], refs[d])) / (c * n_draws),
    })
    return out


def _basic_interval(point: float, values: list[float]) -> list[float]:
    """The basic (reverse-percentile) 95% bootstrap interval [2 point - q97.5, 2 point - q2.5] of the resampled
    `values` (NaN when any value is): it corrects a resampling bias to first order (the metrics bootstrapped here
    are ratios of sums over classes; FD and KID are not bootstrapped, see POOLED)."""
    t = torch.tensor(values, dtype=torch.float64)
    if not torch.isfinite(t).all() or point != point:
        return [float("nan"), float("nan")]
    return [2 * point - float(t.quantile(0.975)), 2 * point - float(t.quantile(0.025))]


def paired_bootstrap(a: dict, b: dict, key: str) -> tuple[float, list[float]]:
    """a - b for `key` of two results on the same classes, draws and bootstrap resamples: the difference of the
    point values and the basic 95% bootstrap interval of the per-resample differences."""
    if a.get("bootstrap") != b.get("bootstrap"):
        raise ValueError("paired bootstrap needs the same resamples on both sides "
                         f"(got {a.get('bootstrap')} and {b.get('bootstrap')})")
    diffs = [x - y for x, y in zip(a[key + "_boot"], b[key + "_boot"])]
    return a[key] - b[key], _basic_interval(a[key] - b[key], diffs)


def _over_draws(key: str, values: list[float]) -> dict:
    """A per-draw metric as reported: its mean, the 95% confidence half-width and the values."""
    return {key: sum(values) / len(values), f"{key}_ci95": ci95(values), f"{key}_draws": values}


def protonet_accuracy(net, draws, fakes, protocol: Protocol, queries: int = 5) -> dict:
    """N-way accuracy with prototypes from real supports (+ generated samples when fakes is given)."""
    g = torch.Generator().manual_seed(protocol.seed + 1)
    feats = [[(embed(net, as_model_space(s)), embed(net, as_model_space(r))) for s, r, _ in per] for per in draws]
    gfeats = [[embed(net, f[:protocol.proto_generated]) for f in row] for row in fakes] if fakes else None
    n_way = min(protocol.n_way, len(draws))
    accs = []
    for _ in range(protocol.episodes):
        classes = torch.randperm(len(draws), generator=g)[:n_way].tolist()
        protos, qs = [], []
        for c in classes:
            d = int(torch.randint(len(draws[c]), (1,), generator=g))
            s, r = feats[c][d]
            protos.append(torch.cat([s, gfeats[c][d]]).mean(0) if gfeats else s.mean(0))
            qs.append(r[torch.randperm(len(r), generator=g)[:queries]])
        labels = torch.arange(n_way).repeat_interleave(torch.tensor([len(q) for q in qs]))  # small references
        pred = distances(torch.cat(qs), torch.stack(protos)).argmin(1)
        accs.append(float((pred == labels).double().mean()))
    return {"mean": sum(accs) / len(accs), "ci95": ci95(accs), "n_way": n_way, "episodes": protocol.episodes}


def validation_metrics(gen: FewShotGenerator, train: ClassDataset, k: int, net: nn.Module,
                       protocol: Protocol) -> dict:
    """The generative metrics on `protocol.classes` *training* classes (support and reference images drawn with
    another seed than the evaluation's), for choosing among checkpoints without looking at the evaluation
    split (`metagan rank`). The feature network was trained on these classes too, so its numbers are not
    comparable with `evaluate`'s; they rank checkpoints of one model."""
    classes, draws = _draws(train, replace(protocol, seed=protocol.seed + 1000), k)
    fakes = generate_all(gen, draws, protocol.samples, protocol.seed + 1000)
    return {"k": k, "classes": len(classes), **generative_metrics(net, draws, fakes, protocol)}


def evaluate(gen: FewShotGenerator, heldout: ClassDataset, k: int, net: nn.Module, protocol: Protocol,
             lowdata: dict | None = None, extra: DrawMetrics | None = None) -> dict:
    """Every metric of one method at one K (and a suite's `extra` ones). Generative metrics are None for gen=None.
    The low-data protocol does not depend on K (it adapts on the n training images): pass `lowdata` to reuse it."""
    if heldout.min_class_size < k + 4:
        raise ValueError(f"held-out classes need at least K+4={k + 4} images (two reference and two pool images "
                         f"besides the supports), the smallest has {heldout.min_class_size}")
    classes, draws = _draws(heldout, protocol, k)
    fakes = generate_all(gen, draws, protocol.samples, protocol.seed) if gen is not None else None
    result: dict = {"k": k, "protocol": asdict(protocol)}
    keys = [f"{m}{suffix}" for m in BOOTSTRAPPED + (extra.keys if extra else ())
            for suffix in ("", "_draws", "_ci95", "_interval", "_boot")]
    keys += ["bootstrap", "nonfinite_sets", "sets", "copy_ratio_real"]
    result.update(generative_metrics(net, draws, fakes, protocol, extra) if fakes else dict.fromkeys(keys))
    result["protonet_acc"] = protonet_accuracy(net, draws, fakes, protocol)
    if getattr(gen, "reference", False):  # a reference row (a copier, held-out real images): no classifier
        result["lowdata"] = result["lowdata_acc"] = None
        return result
    # the low-data arms (lowdata.lowdata_accuracy's dict); lowdata_acc: the first arm's accuracy per n
    result["lowdata"] = lowdata if lowdata is not None else lowdata_accuracy(gen, heldout, classes, protocol)
    result["lowdata_acc"] = next(iter(result["lowdata"]["arms"].values()))
    return result
