"""One new user's ratings in, their top-N recommendations out: adapt a meta-trained ratings GAN to the user.

    >>> rec = Recommender.load("runs/00000-movielens-gan-fomaml")
    >>> support = rec.read_ratings("my_ratings.csv")            # rows of item, rating (the data set's item ids)
    >>> rec.top(support, n=10)                                   # [(item id, predicted label), ...], best first
    $ metagan recommend --checkpoint runs/00000-movielens-gan-fomaml --ratings my_ratings.csv --top 10

The user's rated items are never recommended. Scores are the adapted generator's item vector at z = 0 (predicted
labels in [0, 1]: a rating rescaled, or the probability of a click).
"""
from __future__ import annotations

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import CheckpointError, DataError
from ..functional import Meta
from .tasks import label_of
from .train import RatingsSystem, adapt_batch, build_system, cfg_steps, read

MAX_RATINGS = 1000  # a support set beyond this is not a cold-start user


@dataclass
class Recommender:
    system: RatingsSystem
    meta: Meta
    item_ids: list[str]
    scale: tuple[float, float] = (1.0, 5.0)  # the training data's rating range, which labels are scaled from

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        cfg, _, meta, items, scale = read(path)
        if cfg.model.kind != "gan":
            raise CheckpointError(f"{path} is a {cfg.model.kind} model; recommendations come from a ratings GAN "
                                  "(metagan train --preset movielens-gan-fomaml, or -maml, -reptile, -metasgd)")
        return cls(build_system(cfg, len(items)), meta, items, scale)

    def read_ratings(self, path: str | Path) -> Tensor:
        """A CSV (or TSV) of item, rating rows (a header row is allowed) -> support rows (K, 4). Items must be ids
        of the data set the model was trained on; ratings on its scale (clicks models: a rating >= 4 is a like)."""
        index = {item: i for i, item in enumerate(self.item_ids)}
        if not Path(path).is_file():
            raise DataError(f"no ratings file at {path}: write a CSV of item, rating rows (one per rated item)")
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        delim = "\t" if text.count("\t") > text.count(",") else ","
        items, ratings = [], []
        for n, row in enumerate(csv.reader(text.splitlines(), delimiter=delim)):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DataError(f"{path} line {n + 1}: expected item, rating; got {row!r:.60}")
            try:
                rating = float(row[1])
            except ValueError:
                if n == 0:
                    continue  # header
                raise DataError(f"{path} line {n + 1}: rating {row[1]!r:.20} is not a number") from None
            item = row[0].strip()
            if item not in index:
                raise DataError(f"{path} line {n + 1}: item {item!r:.40} is not in the model's catalogue "
                                f"({len(index)} items, e.g. {self.item_ids[0]!r}); use the data set's item ids")
            items.append(index[item])
            ratings.append(rating)
        if not items:
            raise DataError(f"{path} holds no ratings: write one item, rating row per rated item")
        if len(items) > MAX_RATINGS:
            raise DataError(f"{path} holds {len(items)} ratings; at most {MAX_RATINGS} are read for one user")
        cfg = self.system.cfg
        labels = label_of(torch.tensor(ratings), cfg.data.protocol(), self.scale)
        rows = torch.zeros(len(items), 4)
        rows[:, 1], rows[:, 2], rows[:, 3] = torch.tensor(items, dtype=torch.float32), labels, 1.0
        return rows

    def scores(self, support: Tensor, steps: int | None = None, seed: int = 0) -> Tensor:
        """(n_items,) predicted labels after adapting to the support rows (K, 4)."""
        steps = cfg_steps(self.system.cfg) if steps is None else steps
        batch = {"support": support[None], "query": support[None, :1]}
        return adapt_batch(self.system, self.meta, batch, steps, torch.Generator().manual_seed(seed))[0]

    def top(self, support: Tensor, n: int = 10, steps: int | None = None, seed: int = 0) -> list[tuple[str, float]]:
        s = self.scores(support, steps, seed).clone()
        s[support[:, 1].long()] = -float("inf")  # never recommend what the user rated
        best = s.topk(min(n, int(torch.isfinite(s).sum()))).indices
        return [(self.item_ids[i], float(s[i])) for i in best.tolist()]

    def latency(self, support: Tensor, reps: int = 50, steps: int | None = None) -> dict:
        """Milliseconds from support rows to the whole score vector (adaptation included), over `reps` runs after
        one warm-up: median and 90th percentile."""
        self.scores(support, steps)
        times = []
        for r in range(reps):
            t0 = time.perf_counter()
            self.scores(support, steps, seed=r)
            times.append(1000 * (time.perf_counter() - t0))
        times.sort()
        return {"kind": "recommend-latency", "k": int(support.shape[0]), "n_items": self.system.n_items,
                "steps": cfg_steps(self.system.cfg) if steps is None else steps, "reps": reps,
                "threads": torch.get_num_threads(), "median_ms": round(statistics.median(times), 2),
                "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2)}
