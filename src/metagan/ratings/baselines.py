"""Baselines fitted on the meta-train users' interactions, then scored on a new user's query items.

    random      a seeded random score (the floor: nDCG@5 ~ 0.5 with 5 relevant items of 10)
    popularity  the item's number of interactions among meta-train users
    item-mean   the item's mean label among meta-train users, shrunk to the global mean (10 pseudo-counts)
    mf          biased matrix factorisation (ratings: squared error on the label; clicks: the same on 0/1) trained on
                meta-train users; a new user's vector and bias are fitted on their support set with item factors
                fixed: the exact ridge solution, i.e. fine-tuning the user's parameters to convergence
    mf-aug      mf, with the user's support set enlarged by generated labels (`generated` items scored by an
                adapted generator, weighted `weight` each): the generator as augmentation for a plain recommender
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .tasks import UserTask


def item_stats(train: list[UserTask], n_items: int, shrink: float = 10.0) -> tuple[Tensor, Tensor]:
    """(count (n_items,), shrunk mean label (n_items,)) over the meta-train users' support and query."""
    items = torch.cat([torch.cat([t.s_items, t.q_items]) for t in train])
    labels = torch.cat([torch.cat([t.s_labels, t.q_labels]) for t in train])
    count = torch.bincount(items, minlength=n_items).float()
    total = torch.zeros(n_items).index_add_(0, items, labels)
    mu = float(labels.mean())
    return count, (total + shrink * mu) / (count + shrink)


@dataclass
class MF:
    """Biased MF: label ~ mu + b_i + b_u + p_u . q_i. Item parameters from meta-train users; user ones per user."""

    mu: float
    item_bias: Tensor  # (n_items,)
    item_vec: Tensor  # (n_items, dim)
    reg: float

    def fit_user(self, items: Tensor, labels: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Ridge solution of (b_u, p_u) on one user's (items, labels): (1 + dim,) parameters."""
        x = torch.cat([torch.ones(len(items), 1), self.item_vec[items]], 1).double()  # (K, 1 + dim)
        y = (labels - self.mu - self.item_bias[items]).double()
        w = torch.ones(len(items), dtype=torch.float64) if weights is None else weights.double()
        a = x.T @ (w[:, None] * x) + self.reg * torch.eye(x.shape[1], dtype=torch.float64)
        return torch.linalg.solve(a, x.T @ (w * y)).float(), x

    def predict(self, user: Tensor, items: Tensor) -> Tensor:
        feats = torch.cat([torch.ones(len(items), 1), self.item_vec[items]], 1)
        return self.mu + self.item_bias[items] + feats @ user


def fit_mf(train: list[UserTask], n_items: int, dim: int = 16, reg: float = 0.05, epochs: int = 100,
           seed: int = 0) -> MF:
    """Full-batch Adam on the meta-train users' interactions (support and query)."""
    g = torch.Generator().manual_seed(seed)
    users = torch.cat([torch.full((len(t.s_items) + len(t.q_items),), i) for i, t in enumerate(train)])
    items = torch.cat([torch.cat([t.s_items, t.q_items]) for t in train])
    labels = torch.cat([torch.cat([t.s_labels, t.q_labels]) for t in train])
    mu = float(labels.mean())
    p = (0.01 * torch.randn(len(train), dim, generator=g)).requires_grad_()
    q = (0.01 * torch.randn(n_items, dim, generator=g)).requires_grad_()
    bu = torch.zeros(len(train), requires_grad=True)
    bi = torch.zeros(n_items, requires_grad=True)
    opt = torch.optim.Adam([p, q, bu, bi], lr=0.02)
    for _ in range(epochs):
        pred = mu + bi[items] + bu[users] + (p[users] * q[items]).sum(1)
        loss = ((pred - labels) ** 2).mean() + reg * (p.pow(2).sum() + q.pow(2).sum()) / len(labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return MF(mu, bi.detach(), q.detach(), reg=1.0)


def mf_scores(mf: MF, task: UserTask, extra: tuple[Tensor, Tensor, float] | None = None) -> Tensor:
    """A new user's query scores after fitting their parameters on the support (plus `extra` = (items, labels,
    weight) generated ones)."""
    items, labels, w = task.s_items, task.s_labels, torch.ones(len(task.s_items))
    if extra is not None:
        ei, el, ew = extra
        items, labels, w = torch.cat([items, ei]), torch.cat([labels, el]), torch.cat([w, torch.full((len(ei),), ew)])
    user, _ = mf.fit_user(items, labels, w)
    return mf.predict(user, task.q_items)


def augmentation(scores: Tensor, task: UserTask, popular: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The generated part of an augmented support set: the `n` most popular items the user has not rated in the
    support, labelled with the adapted generator's scores (n_items,)."""
    seen = torch.zeros(len(scores), dtype=torch.bool)
    seen[task.s_items] = True
    items = popular[~seen[popular]][:n]
    return items, scores[items]
