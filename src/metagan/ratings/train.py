"""Meta-training on users: metagan's meta-learners and outer step over the ratings problems; adaptation to a user.

    >>> cfg = get_preset("movielens-gan-fomaml")
    >>> run = train(cfg, out_dir="runs")                                   # runs/00000-movielens-gan-fomaml/
    >>> run = train(apply_overrides(cfg, ["train.steps=300"]), resume=run)  # continue exactly where it stopped
    >>> cfg, step, meta, item_ids, scale = read(run)                       # the validation-best meta-parameters

The run folder is the shared loop's (domain_loop): config.json, log.jsonl, checkpoint.safetensors (the last step,
with optimizer and RNG state: resuming is exact) and best.safetensors (the validation step with the best nDCG@5:
what `read` of the folder returns).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.func import vmap
from torch.utils._pytree import tree_map

from .. import checkpoint as ckpt
from ..domain_loop import DomainLoop, fit, resume_point, run_folder
from ..errors import CheckpointError, ConfigError
from ..functional import Meta, detach, params_of
from ..meta import build_learner, sample_noise
from ..meta.problem import InnerSchedule
from .baselines import item_stats
from .config import RatingsConfig, config_from_json
from .data import Interactions, load_interactions
from .metrics import ranking_metrics
from .models import ItemDiscriminator, ItemGenerator, MeluNet
from .problem import MeluProblem, RatingGanProblem
from .tasks import UserTask, make_split, rating_scale, sparse_batch

FORMAT = ckpt.DomainFormat("metagan-ratings-1", "ratings", "movielens-gan-...", config_from_json)
EVAL_BATCH = 64  # users adapted at once (vmap) when scoring a split


@dataclass
class RatingsSystem:
    """The parts a config names, for a catalogue of n_items items: problem (with its networks) and meta-learner."""

    cfg: RatingsConfig
    n_items: int
    problem: RatingGanProblem | MeluProblem
    learner: object

    @property
    def gan(self) -> bool:
        return self.cfg.model.kind == "gan"

    def batch(self, tasks: list[UserTask]) -> dict[str, Tensor]:
        return sparse_batch(tasks)


def build_system(cfg: RatingsConfig, n_items: int, data: Interactions | None = None) -> RatingsSystem:
    """Networks drawn from the global RNG inside a fork (init_meta draws the weights from a seed)."""
    m = cfg.model
    with torch.random.fork_rng(devices=[]):
        if m.kind == "gan":
            problem = RatingGanProblem(ItemGenerator(n_items, m.z_dim, m.hidden), ItemDiscriminator(n_items, m.hidden),
                                       cfg.loss, cfg.data.clicks, m.adapt)
        else:
            if data is None:
                raise ConfigError("a MeLU system needs the interaction data (its side features)")
            problem = MeluProblem(MeluNet(n_items, data.item_genres, data.item_year, data.user_feats, m.embed,
                                          m.hidden), cfg.data.clicks)
    return RatingsSystem(cfg, n_items, problem, build_learner(cfg, problem))


def init_meta(system: RatingsSystem, seed: int, prior: Tensor | None = None) -> Meta:
    """Fresh meta-parameters drawn from `seed`. prior (n_items,): the items' mean labels among meta-train users;
    with model.item_prior the generator's item biases start at their logits, so G starts as the item-mean
    recommender instead of relearning each item's quality from the few queries it appears in."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if system.gan:
            m = system.cfg.model
            pg = params_of(ItemGenerator(system.n_items, m.z_dim, m.hidden))
            pd = params_of(ItemDiscriminator(system.n_items, m.hidden))
            if m.item_prior and prior is not None:
                pg["out_b"] = torch.logit(prior.clamp(0.02, 0.98))
        else:
            net = system.problem.net
            for mod in net.modules():
                if mod is not net and hasattr(mod, "reset_parameters"):
                    mod.reset_parameters()
            pg, pd = MeluProblem.split_params(params_of(net))
    return system.learner.init_meta(pg, pd)


def adapt_batch(system: RatingsSystem, meta: Meta, batch: dict[str, Tensor], steps: int,
                generator: torch.Generator) -> Tensor:
    """Adapt to every task of `batch` (support (U, ...)) from the meta-parameters and score its query:
    (U, Q) predicted labels for the query rows (MeLU) or for every item (GAN: (U, n_items))."""
    cfg = system.cfg
    sched = InnerSchedule(steps, cfg.meta.n_d, cfg.meta.n_g)
    u, f = batch["support"].shape[0], cfg.task.fakes
    noise = sample_noise(u, sched, f, f, system.problem.z_dim, generator)
    lr_g, lr_d = system.learner.rates(meta)
    meta = detach(meta)

    def one(support, query, nz):
        pg, pd, _ = system.problem.inner_loop(meta["g"], meta["d"], detach(lr_g), detach(lr_d), support, nz, sched,
                                              True)
        if system.gan:
            return system.problem.score(pg, support, system.n_items)
        return system.problem.predict(pg, pd, query)

    if u == 1:  # one user (a recommendation): vmap's batching would only add overhead
        return one(batch["support"][0], batch["query"][0], tree_map(lambda t: t[0], noise))[None]
    return torch.cat([vmap(one)(batch["support"][i:i + EVAL_BATCH], batch["query"][i:i + EVAL_BATCH],
                                tree_map(lambda t: t[i:i + EVAL_BATCH], noise)) for i in range(0, u, EVAL_BATCH)])


def query_scores(system: RatingsSystem, meta: Meta, tasks: list[UserTask], steps: int | None = None,
                 seed: int = 0) -> list[Tensor]:
    """Each task's predicted labels of its query items, after adaptation to its support set."""
    steps = cfg_steps(system.cfg) if steps is None else steps
    out = adapt_batch(system, meta, system.batch(tasks), steps, torch.Generator().manual_seed(seed))
    return [out[i, t.q_items] if system.gan else out[i] for i, t in enumerate(tasks)]


def cfg_steps(cfg: RatingsConfig) -> int:
    return cfg.train.adapt_steps or cfg.meta.inner_steps


def evaluate(system: RatingsSystem, meta: Meta, tasks: list[UserTask], scale=(1.0, 5.0), seed: int = 0) -> dict:
    """Mean ranking metrics (and MAE in ratings) of the adapted model over `tasks`."""
    scores = query_scores(system, meta, tasks, seed=seed)
    per = [ranking_metrics(s, t, system.cfg.data.clicks, scale) for s, t in zip(scores, tasks)]
    return {k: sum(p[k] for p in per) / len(per) for k in per[0]}


def read(path: str | Path, last: bool = False) -> tuple[RatingsConfig, int, Meta, list[str], tuple[float, float]]:
    """(config, step, meta-parameters, the catalogue's item ids, the rating scale labels were mapped from) of a
    ratings checkpoint; a run folder reads its best.safetensors (last: checkpoint.safetensors)."""
    ck = ckpt.load_domain(path, FORMAT, last)
    try:
        items, scale = json.loads(ck.metadata["item_ids"]), tuple(json.loads(ck.metadata.get("scale", "[1, 5]")))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path} has damaged ratings metadata ({str(e)[:80]}): retrain it") from None
    return ck.config, ck.step, ck.meta, items, scale


def sample_step(system: RatingsSystem, train_tasks: list[UserTask], rng: torch.Generator) -> dict:
    """A meta-batch of meta-train users drawn without replacement, with their noise. With data.resample each user's
    query is redrawn: Q of all their interactions at random, the rest the support, so every interaction of the
    meta-train users takes its turn in an outer loss (with the fixed split only the last Q of each would)."""
    cfg = system.cfg
    idx = torch.randperm(len(train_tasks), generator=rng)[:min(cfg.task.meta_batch, len(train_tasks))]
    tasks = [train_tasks[i] for i in idx.tolist()]
    if cfg.data.resample:
        tasks = [redraw(t, rng) for t in tasks]
    sched = system.learner.sched
    noise = sample_noise(len(idx), sched, cfg.task.fakes, cfg.task.fakes, system.problem.z_dim, rng)
    return {**sparse_batch(tasks), "noise": noise}


def redraw(task: UserTask, rng: torch.Generator) -> UserTask:
    """The same user with a random query of the same size (the support keeps its order, the query is random)."""
    items, labels = torch.cat([task.s_items, task.q_items]), torch.cat([task.s_labels, task.q_labels])
    ratings = torch.cat([task.s_ratings, task.q_ratings])
    q = len(task.q_items)
    perm = torch.randperm(len(items), generator=rng)
    s, qi = perm[q:].sort().values, perm[:q]
    return UserTask(task.user, items[s], labels[s], ratings[s], items[qi], labels[qi], ratings[qi], task.relevant)


def train(cfg: RatingsConfig, out_dir: str | Path | None = None, name: str = "ratings",
          resume: str | Path | None = None, data: Interactions | None = None, log=None) -> Path:
    """Meta-train to cfg.train.steps on the meta-train users of cfg.data's split; validate every ckpt_every steps.
    resume: a run folder to continue (its own config, with this cfg's train section)."""
    cfg, last = resume_point(cfg, resume, FORMAT)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data = data if data is not None else load_interactions(cfg.data.source)
    split, scale = make_split(data, cfg.data.protocol(), cfg.data.split_seed), rating_scale(data)
    system = build_system(cfg, data.n_items, data)
    fresh = init_meta(system, cfg.train.seed, item_stats(split["train"], data.n_items)[1])

    def validate(meta: Meta) -> tuple[dict, float, str]:
        valid = evaluate(system, meta, split["valid"], scale)
        return {"valid": valid}, -valid["ndcg@5"], f"valid nDCG@5 {valid['ndcg@5']:.4f}"

    loop = DomainLoop(FORMAT, lambda rng: sample_step(system, split["train"], rng), validate,
                      {"item_ids": json.dumps(data.item_ids), "scale": json.dumps(list(scale))})
    return fit(system, loop, fresh, last, run_folder(cfg, out_dir, name, resume, last), log)
