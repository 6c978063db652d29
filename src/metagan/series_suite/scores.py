"""The time-series literature's two post-hoc measures of generated series, per support draw, as the evaluation's
extra metrics (evaluate.DrawMetrics: the same draws, class bootstrap and intervals as FD or fidelity).

- discriminative: |accuracy - 0.5| of a classifier told to separate real from generated series (Yoon et al. 2019,
  TimeGAN). Per class, the reference series (real, never a support) and as many generated ones; two folds split
  every class's real and generated series alike, a SeriesCNN is trained on one fold of all classes and tested on
  the other, then the other way round, so every series is judged once. 0 = indistinguishable; 0.5 = always told
  apart. A copier scores high: its duplicated supports are easy to learn.
- predictive: train on synthetic, test on real (TSTR; Esteban et al. 2017), in its classification form: an N-way
  SeriesCNN over the evaluated classes trained on each class's generated series only, tested on the reference
  series. The forecasting form (TimeGAN's next-step error) does not ask whether a sample belongs to its class,
  which is what a few-shot generator is for, so we use classification. `support-copy` scores what the K supports
  alone teach; `real` what the real pool (as few series as the reference) teaches.

Both classifiers train for `protocol.lowdata_updates` Adam updates from initialisations and batch orders seeded
from (protocol seed, K, draw, fold) only: every method is judged by identically trained classifiers.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..data import as_model_space
from ..evaluate import DrawMetrics
from ..lowdata import _seed
from .networks import SeriesCNN, fit, predict

KEYS = ("discriminative", "predictive")


def _classifier(channels: int, n_classes: int, seed: int) -> SeriesCNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SeriesCNN(channels, n_classes)


def discriminative_counts(real: list[Tensor], fake: list[Tensor], updates: int, seed: int) -> tuple[Tensor, Tensor]:
    """real[c] (n_c, C, L) and fake[c] (m_c, C, L) per class -> (correct real/generated calls, series judged) per
    class, float64 (C,). Each class contributes min(n_c, m_c) series of each kind."""
    xs, ys, cls, fold = [], [], [], []
    for c, (r, f) in enumerate(zip(real, fake, strict=True)):
        n = min(len(r), len(f))
        if n < 2:
            raise ValueError(f"the discriminative score needs at least 2 real and 2 generated series per class "
                             f"(two folds), class {c} has {len(r)} and {len(f)}")
        xs += [r[:n].float(), f[:n].float()]
        ys += [torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)]
        cls += [torch.full((2 * n,), c)]
        fold += [torch.arange(n) % 2, torch.arange(n) % 2]
    x, y, cls, fold = torch.cat(xs), torch.cat(ys), torch.cat(cls), torch.cat(fold)
    hits = torch.zeros(len(real), dtype=torch.float64)
    for test in (0, 1):
        tr, te = fold != test, fold == test
        net = fit(_classifier(x.shape[1], 2, seed + test), x[tr], y[tr], updates,
                  torch.Generator().manual_seed(seed + test))
        hits.index_add_(0, cls[te], (predict(net, x[te]) == y[te]).double())
    return hits, torch.bincount(cls, minlength=len(real)).double()


def predictive_counts(real: list[Tensor], fake: list[Tensor], updates: int, seed: int) -> tuple[Tensor, Tensor]:
    """An N-way classifier trained on fake[c] (m_c, C, L) labelled c, tested on real[c] (n_c, C, L) -> (correct
    predictions, real series) per class, float64 (C,)."""
    x = torch.cat([f.float() for f in fake])
    y = torch.cat([torch.full((len(f),), c) for c, f in enumerate(fake)])
    net = fit(_classifier(x.shape[1], len(fake), seed), x, y, updates, torch.Generator().manual_seed(seed))
    hits = torch.tensor([float((predict(net, r.float()) == c).sum()) for c, r in enumerate(real)],
                        dtype=torch.float64)
    return hits, torch.tensor([float(len(r)) for r in real], dtype=torch.float64)


def series_scores(protocol) -> DrawMetrics:
    """The discriminative and predictive scores of every draw, for evaluate(..., extra=...)."""
    def stats(draws, fakes) -> list[dict]:
        k, out = len(draws[0][0][0]), []
        for d in range(len(draws[0])):
            real = [as_model_space(per[d][1]) for per in draws]  # each class's reference series
            fake = [row[d] for row in fakes]
            if not all(torch.isfinite(f).all() for f in fake):  # a diverged generator: undefined, as FD
                nan = torch.full((len(real),), float("nan"), dtype=torch.float64)
                out.append({key: (nan, torch.ones_like(nan)) for key in KEYS})
                continue
            out.append({
                "discriminative": discriminative_counts(
                    real, fake, protocol.lowdata_updates, _seed("discriminative", protocol.seed, k, d)),
                "predictive": predictive_counts(
                    real, fake, protocol.lowdata_updates, _seed("predictive", protocol.seed, k, d)),
            })
        return out
    return DrawMetrics(KEYS, stats, {"discriminative": lambda acc: (acc - 0.5).abs()})
