"""Ranking and rating metrics of one user's query list, as RecBole computes them.

The model ranks the user's Q query items by its scores (ties keep the query's own random order). The relevant
items are `task.relevant`: in the ratings setting the top 5 of the query by true rating, in the clicks setting
those rated >= 4 (a user with none scores 0 on every ranking metric).
    nDCG@k = DCG@k / IDCG@k, binary gains: DCG@k = sum_{i <= k} rel_i / log2(i + 1), IDCG@k the same for the ideal
             order (min(#relevant, k) hits first)
    MRR@k  = 1 / (rank of the first relevant item) if it is within the top k, else 0
    HR@k   = 1 if a relevant item is within the top k, else 0
    MAE    = mean |predicted - true rating| over the query (ratings setting), predictions mapped back from the
             [0, 1] label to the rating scale
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .tasks import UserTask

RANKING = ("ndcg@5", "ndcg@10", "mrr@5", "hit@5")


def ranking_metrics(scores: Tensor, task: UserTask, clicks: bool, scale: tuple[float, float] = (1.0, 5.0)) -> dict:
    """scores (Q,) of the task's query items -> {"ndcg@5", "ndcg@10", "mrr@5", "hit@5"[, "mae"]}."""
    if scores.shape != task.relevant.shape:
        raise ValueError(f"scores {tuple(scores.shape)} do not match the query {tuple(task.relevant.shape)}")
    order = torch.sort(scores.detach().float(), descending=True, stable=True).indices
    rel = task.relevant[order].float()
    out = {f"ndcg@{k}": ndcg(rel, int(task.relevant.sum()), k) for k in (5, 10)}
    hits = rel[:5].nonzero()
    out["mrr@5"] = 1.0 / (int(hits[0]) + 1) if len(hits) else 0.0
    out["hit@5"] = float(len(hits) > 0)
    if not clicks:
        lo, hi = scale
        pred = lo + scores.detach().float().clamp(0, 1) * (hi - lo)
        out["mae"] = float((pred - task.q_ratings).abs().mean())
    return out


def ndcg(rel: Tensor, n_relevant: int, k: int) -> float:
    """Binary nDCG@k of a ranked relevance vector rel (Q,); 0 when nothing is relevant."""
    if n_relevant == 0:
        return 0.0
    disc = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    dcg = float((rel[:k].double() * disc[:len(rel[:k])]).sum())
    idcg = float(disc[:min(n_relevant, k)].sum())
    return dcg / idcg


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95% half-width (Student t) of a list: the interval over seeds."""
    from scipy.stats import t as student_t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
