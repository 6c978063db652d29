"""The protocol: which topics are tasks, the split of whole topics, and the exchanges each task draws.

    >>> split = make_split(load_corpus(), min_exchanges=20, seed=0)    # {"train", "valid", "eval"}: lists of Topic
    >>> held = heldout_parts(split["eval"][0], seed=0)                 # pool (supports), query, classifier exchanges

Split: topics with at least `min_exchanges` exchanges survive. In every language with at least 3 surviving
topics, the topics are shuffled with the seed and 20% (at least one) go to evaluation, 10% (rounded, with 5 or
more topics) to validation, the rest to training; languages with fewer surviving topics train only. So no
held-out topic reaches training, and every held-out topic's language has training topics (what language
identification is trained on). Validation topics (from the training side of the corpus) serve design decisions.

A held-out topic's exchanges, shuffled with the seed, are cut into disjoint parts: the support pool (the first
10; a K-shot support set is K of them) and, from the rest, the query (its prompts are what the adapted model
answers, its replies the references) and the classifier part (the topic-fidelity classifier's training replies).
Validation (checkpoint selection) uses the two-way cut: the query every other exchange of the rest, at most 20.
The benchmark (`real_pool=True`) deals the rest in turn to a real pool, the query and the classifier part (real
pool and query at most 20 each, the overflow to the classifier part): the real pool's replies are the `real`
reference row, real replies of the topic that are neither supports, references nor classifier data; dealt
first, the real pool is never smaller than the query.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import DataError
from .data import Exchange, Topic
from .tokens import pair

POOL = 10          # support pool of a held-out topic: K <= 10
MAX_QUERY = 20     # query exchanges of a held-out topic
EVAL_SHARE, VALID_SHARE = 0.2, 0.1


def make_split(topics: list[Topic], min_exchanges: int, seed: int) -> dict[str, list[Topic]]:
    """{"train", "valid", "eval"}: whole topics, per language (see the module doc); raises DataError when no topic
    has enough exchanges."""
    kept = [t for t in topics if len(t.exchanges) >= min_exchanges]
    if not kept:
        raise DataError(f"no topic has {min_exchanges} exchanges or more: lower data.min_exchanges or add data")
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[Topic]] = {"train": [], "valid": [], "eval": []}
    for lang in sorted({t.language for t in kept}):
        group = [t for t in kept if t.language == lang]
        order = [group[i] for i in torch.randperm(len(group), generator=g).tolist()]
        n = len(order)
        n_eval = max(1, round(EVAL_SHARE * n)) if n >= 3 else 0
        n_valid = round(VALID_SHARE * n) if n >= 5 else 0
        out["eval"] += order[:n_eval]
        out["valid"] += order[n_eval:n_eval + n_valid]
        out["train"] += order[n_eval + n_valid:]
    for part in out.values():
        part.sort(key=lambda t: t.name)
    return out


@dataclass
class HeldOut:
    """A held-out topic's disjoint parts (lists of exchanges); `real` is empty unless asked for."""

    topic: Topic
    pool: list[Exchange]
    query: list[Exchange]
    classifier: list[Exchange]
    real: list[Exchange] = field(default_factory=list)


def heldout_parts(topic: Topic, seed: int, pool: int = POOL, max_query: int = MAX_QUERY,
                  real_pool: bool = False) -> HeldOut:
    """The parts of the module doc; real_pool: also a real pool (the benchmark's cut), else the two-way cut."""
    need = pool + (3 if real_pool else 2)
    if len(topic.exchanges) < need:
        raise DataError(f"topic {topic.name} has {len(topic.exchanges)} exchanges; a held-out topic needs at "
                        f"least {need} (a support pool of {pool}, a query{', a real' if real_pool else ''} and a "
                        "classifier exchange)")
    g = torch.Generator().manual_seed(seed * 1_000_003 + sum(topic.name.encode()))
    ex = [topic.exchanges[i] for i in torch.randperm(len(topic.exchanges), generator=g).tolist()]
    rest = ex[pool:]
    if not real_pool:
        return HeldOut(topic, ex[:pool], rest[0::2][:max_query], rest[1::2] + rest[0::2][max_query:])
    real, query = rest[0::3], rest[1::3]
    return HeldOut(topic, ex[:pool], query[:max_query], rest[2::3] + real[max_query:] + query[max_query:],
                   real[:max_query])


def encode(exchanges: list[Exchange], lp: int, lr: int) -> Tensor:
    """(N, lp + lr) int64 rows."""
    return torch.stack([pair(p, r, lp, lr) for p, r in exchanges])


def support_draws(pool_size: int, k: int, draws: int, seed: int) -> list[list[int]]:
    """`draws` support sets of k indices into the pool, from a stream fixed by (seed, k): every method sees the
    same supports."""
    g = torch.Generator().manual_seed(seed * 7919 + k)
    return [torch.randperm(pool_size, generator=g)[:k].tolist() for _ in range(draws)]


class TaskSampler:
    """Meta-training tasks: a meta-batch of distinct training topics, each with k support and q query exchanges
    drawn at random (without replacement, disjoint) every time the topic is drawn; `sample(..., k=)` draws another
    support size for one meta-batch (at most the k given here)."""

    def __init__(self, topics: list[Topic], k: int, q: int, lp: int, lr: int):
        small = [t.name for t in topics if len(t.exchanges) < k + q]
        if small or not topics:
            raise DataError(f"training topics need k + q = {k + q} exchanges each ({small[:3]} have fewer; "
                            "none given)" if small else "no training topics")
        self.rows = [encode(t.exchanges, lp, lr) for t in topics]
        self.k, self.q = k, q

    def sample(self, batch: int, rng: torch.Generator, k: int | None = None) -> dict[str, Tensor]:
        """{"support": (B, k, lp + lr), "query": (B, q, lp + lr)} int64; B = min(batch, topics)."""
        k = self.k if k is None else min(k, self.k)
        idx = torch.randperm(len(self.rows), generator=rng)[:min(batch, len(self.rows))].tolist()
        s, q = [], []
        for i in idx:
            perm = torch.randperm(len(self.rows[i]), generator=rng)
            s.append(self.rows[i][perm[:k]])
            q.append(self.rows[i][perm[k:k + self.q]])
        return {"support": torch.stack(s), "query": torch.stack(q)}
