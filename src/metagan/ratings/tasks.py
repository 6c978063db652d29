"""Cold-start tasks: one user = one task; the user's first interactions are the support set, the last Q the query.

    >>> protocol = Protocol()                                  # RecBole-MetaRec's filter, split and query size
    >>> split = make_split(data, protocol, seed=0)             # {"train": [...], "valid": [...], "test": [...]}
    >>> batch = sparse_batch(split["train"][:8])               # support (8, S, 4), query (8, 10, 4)

Protocol (RecBole-MetaRec, Zhang et al. 2022, on MovieLens-100K): users with 13 to 100 interactions; users shuffled
and split 8:1:1 into meta-train, validation and test; each user's query set is 10 of their interactions and the
support set the others. RecBole-MetaRec draws the 10 at random (`order="random"` here); by default (`"time"`) the
query is the user's 10 latest interactions, so the support set is what a new user rated first.
Ratings setting: relevance is the rating (the query's top 5 by rating are the positives, ties broken at random);
clicks setting (`clicks=True`): a rating >= 4 is a positive, and models are trained on the 0/1 label.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from .data import Interactions

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Protocol:
    min_interactions: int = 13     # users with fewer are dropped (RecBole-MetaRec: [13, 100])
    max_interactions: int = 100    # users with more are dropped
    query: int = 10                # query interactions per user (the ranked list)
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # meta-train / validation / test users
    order: str = "time"            # time: the query is the latest interactions | random: 10 at random (RecBole)
    clicks: bool = False           # the clicks setting: label = rating >= threshold
    threshold: float = 4.0         # clicks: the smallest positive rating
    positives: int = 5             # ratings setting: the top-N query items by rating are the relevant ones

    def check(self) -> None:
        if self.order not in ("time", "random"):
            raise ConfigError(f"protocol order must be time or random, got {self.order!r}")
        if self.query < 1 or self.min_interactions <= self.query:
            raise ConfigError(f"min_interactions ({self.min_interactions}) must exceed the query size "
                              f"({self.query}) so every user keeps a support set")
        if abs(sum(self.fractions) - 1.0) > 1e-6 or min(self.fractions) <= 0:
            raise ConfigError(f"split fractions must be positive and sum to 1, got {self.fractions}")


@dataclass
class UserTask:
    """One user's task. Support in time order; query in a random order (ties in a score keep it).
    relevant (Q,) bool: the query items that count as hits. Ratings are the file's values; labels what the models
    are trained on: the rating scaled to [0, 1] from the range (1, 5), or the 0/1 click."""

    user: int
    s_items: Tensor
    s_labels: Tensor
    s_ratings: Tensor
    q_items: Tensor
    q_labels: Tensor
    q_ratings: Tensor
    relevant: Tensor


def label_of(ratings: Tensor, protocol: Protocol, scale: tuple[float, float]) -> Tensor:
    if protocol.clicks:
        return (ratings >= protocol.threshold).float()
    lo, hi = scale
    return ((ratings - lo) / (hi - lo)).clamp(0, 1)


def rating_scale(data: Interactions) -> tuple[float, float]:
    lo, hi = float(data.ratings.min()), float(data.ratings.max())
    return (lo, hi if hi > lo else lo + 1.0)


def eligible_users(data: Interactions, protocol: Protocol) -> Tensor:
    counts = torch.bincount(data.users, minlength=data.n_users)
    return ((counts >= protocol.min_interactions) & (counts <= protocol.max_interactions)).nonzero()[:, 0]


def user_task(data: Interactions, rows: Tensor, protocol: Protocol, rng: torch.Generator,
              scale: tuple[float, float]) -> UserTask:
    """The task of one user from the indices `rows` of their interactions."""
    q = protocol.query
    if protocol.order == "time":  # stable: equal timestamps keep the file's order
        rows = rows[torch.sort(data.times[rows], stable=True).indices]
        support, query = rows[:-q], rows[-q:]
    else:
        perm = rows[torch.randperm(len(rows), generator=rng)]
        query, support = perm[:q], perm[q:]
        support = support[torch.sort(data.times[support], stable=True).indices]
    query = query[torch.randperm(q, generator=rng)]
    r = data.ratings[query]
    if protocol.clicks:
        relevant = r >= protocol.threshold
    else:  # the top `positives` by rating; a random key breaks ties, independently of the query order
        key = r + 0.5 * torch.rand(q, generator=rng)
        relevant = torch.zeros(q, dtype=torch.bool)
        relevant[key.topk(min(protocol.positives, q)).indices] = True
    return UserTask(int(data.users[rows[0]]), data.items[support], label_of(data.ratings[support], protocol, scale),
                    data.ratings[support], data.items[query], label_of(r, protocol, scale), r, relevant)


def make_split(data: Interactions, protocol: Protocol, seed: int) -> dict[str, list[UserTask]]:
    """Users filtered, shuffled with `seed` and split 8:1:1; every user's task drawn from the same seed."""
    protocol.check()
    users = eligible_users(data, protocol)
    if len(users) < 10:
        raise DataError(f"only {len(users)} users have {protocol.min_interactions} to {protocol.max_interactions} "
                        "interactions; the protocol needs at least 10 (one per split at 8:1:1)")
    rng = torch.Generator().manual_seed(seed)
    users = users[torch.randperm(len(users), generator=rng)]
    n_train = round(protocol.fractions[0] * len(users))
    n_valid = round(protocol.fractions[1] * len(users))
    bounds = {"train": users[:n_train], "valid": users[n_train:n_train + n_valid], "test": users[n_train + n_valid:]}
    order = torch.argsort(data.users, stable=True)
    starts = torch.searchsorted(data.users[order], torch.arange(data.n_users + 1))
    scale = rating_scale(data)
    return {name: [user_task(data, order[starts[u]:starts[u + 1]], protocol, rng, scale) for u in us.tolist()]
            for name, us in bounds.items()}


def sparse_batch(tasks: list[UserTask], width: int | None = None) -> dict[str, Tensor]:
    """support (U, S, 4), query (U, Q, 4): rows (user, item, label, present) padded with absent rows to the
    longest support (or `width`), the form the problems read (a sparse item vector per task)."""
    def rows(user: int, items: Tensor, labels: Tensor, n: int) -> Tensor:
        out = torch.zeros(n, 4)
        k = min(len(items), n)
        out[:k, 0], out[:k, 1], out[:k, 2], out[:k, 3] = float(user), items[-k:].float(), labels[-k:], 1.0
        return out

    width = width or max(len(t.s_items) for t in tasks)
    sup = torch.stack([rows(t.user, t.s_items, t.s_labels, width) for t in tasks])
    qry = torch.stack([rows(t.user, t.q_items, t.q_labels, len(t.q_items)) for t in tasks])
    return {"support": sup, "query": qry}
