"""Meta-training on users: metagan's meta-learners and outer step over the ratings problems; adaptation to a user.

    >>> run = train(get_preset("movielens-gan-fomaml"), out_dir="runs")     # runs/00000-movielens-gan-fomaml/
    >>> model = load(run)                                                  # the validation-best meta-parameters
    >>> scores = model.scores(support)                                     # (n_items,) predicted labels

A run folder holds config.json, log.jsonl (one line per logged step, and one per validation), checkpoint.safetensors
(the last step: meta-parameters, optimizer and RNG state, kept for resuming, which the command line does not
offer yet) and best.safetensors (the
meta-parameters of the validation step with the best nDCG@5, what `load` returns).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.func import vmap
from torch.utils._pytree import tree_map

from .. import checkpoint as ckpt
from ..errors import CheckpointError, ConfigError
from ..functional import Meta, detach, flatten, params_of, unflatten
from ..meta import build_learner, meta_gradients, sample_noise
from ..meta.problem import InnerSchedule
from ..train import TrainState, apply_step, make_optimizer, new_run_dir
from .baselines import item_stats
from .config import RatingsConfig, config_from_json
from .data import Interactions, load_interactions
from .metrics import ranking_metrics
from .models import ItemDiscriminator, ItemGenerator, MeluNet
from .problem import MeluProblem, RatingGanProblem
from .tasks import UserTask, make_split, rating_scale, sparse_batch

FORMAT = "metagan-ratings-1"
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


def save(path: Path, cfg: RatingsConfig, step: int, meta: Meta, item_ids: list[str], scale: tuple[float, float],
         state: TrainState | None = None) -> Path:
    """Write meta-parameters (and with `state`, the optimizer and RNG) atomically (ckpt.write_atomic), with the
    catalogue's item ids and the rating scale the labels were mapped from."""
    tensors = {f"meta.{k}": v.detach().contiguous() for k, v in flatten(meta).items()}
    metadata = {"format": FORMAT, "step": str(step), "config": cfg.to_json(), "item_ids": json.dumps(item_ids),
                "scale": json.dumps(list(scale))}
    if state is not None:
        opt = state.optimizer.state_dict()
        for i, s in opt["state"].items():
            tensors.update({f"opt.{i}.{k}": v for k, v in s.items() if isinstance(v, Tensor)})
        tensors["rng"] = state.rng.get_state()
        metadata["opt_groups"] = json.dumps(opt["param_groups"])
    ckpt.write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def read(path: str | Path) -> tuple[RatingsConfig, int, Meta, list[str], dict]:
    """(config, step, meta-parameters, item ids, the rest: opt.*, rng, opt_groups) of a ratings checkpoint; a run
    folder reads its best.safetensors. Reads tensors and JSON only."""
    p = Path(path)
    if p.is_dir():
        p = p / "best.safetensors" if (p / "best.safetensors").is_file() else p / ckpt.FILENAME
    if not p.is_file():
        raise CheckpointError(f"no ratings checkpoint at {path}: pass a run folder of `metagan train --preset "
                              "movielens-...` or its .safetensors file")
    try:
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
            if md.get("format") != FORMAT:
                raise CheckpointError(f"{p} is not a ratings checkpoint (format {md.get('format')!r:.40}); "
                                      "recommendations need a model trained with --preset movielens-gan-...")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        cfg, step, items = config_from_json(md["config"]), int(md["step"]), json.loads(md["item_ids"])
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{p} is not a readable ratings checkpoint ({str(e)[:120]}): retrain it") from None
    meta = unflatten({k[5:]: v for k, v in tensors.items() if k.startswith("meta.")})
    extra = {k: v for k, v in tensors.items() if not k.startswith("meta.")}
    extra["opt_groups"] = json.loads(md.get("opt_groups", "[]"))
    extra["scale"] = tuple(json.loads(md.get("scale", "[1, 5]")))
    return cfg, step, meta, items, extra


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


def train(cfg: RatingsConfig, out_dir: str | Path | None = None, name: str = "ratings", progress: bool = False,
          data: Interactions | None = None, log=None) -> Path:
    """Meta-train to cfg.train.steps on the meta-train users of cfg.data's split; validate every ckpt_every steps."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data = data if data is not None else load_interactions(cfg.data.source)
    split, scale = make_split(data, cfg.data.protocol(), cfg.data.split_seed), rating_scale(data)
    system = build_system(cfg, data.n_items, data)
    prior = item_stats(split["train"], data.n_items)[1]
    meta = tree_map(lambda t: t.clone().requires_grad_(True), init_meta(system, cfg.train.seed, prior))
    opt, order = make_optimizer(cfg, meta)
    state = TrainState(meta, {}, opt, order, torch.Generator().manual_seed(cfg.train.seed))
    run = new_run_dir(out_dir or cfg.train.out_dir, name)
    (run / "config.json").write_text(cfg.to_json())
    best, t0 = -1.0, time.perf_counter()
    with open(run / "log.jsonl", "w") as logf:
        while state.step < cfg.train.steps:
            tasks = sample_step(system, split["train"], state.rng)
            grads, aux = meta_gradients(system.learner, detach(state.meta), tasks, cfg.meta.vectorize)
            stats = apply_step(system, state, grads, {k: float(v) for k, v in aux.items()})
            if state.step % cfg.train.log_every == 0:
                logf.write(json.dumps({"step": state.step, "time": round(time.perf_counter() - t0, 2), **stats}) + "\n")
            if state.step % cfg.train.ckpt_every == 0 or state.step == cfg.train.steps:
                valid = evaluate(system, detach(state.meta), split["valid"], scale)
                logf.write(json.dumps({"step": state.step, "valid": valid}) + "\n")
                logf.flush()
                if log:
                    log(f"{name} step {state.step}: valid nDCG@5 {valid['ndcg@5']:.4f}")
                if valid["ndcg@5"] > best:
                    best = valid["ndcg@5"]
                    save(run / "best.safetensors", cfg, state.step, detach(state.meta), data.item_ids, scale)
                save(run / ckpt.FILENAME, cfg, state.step, detach(state.meta), data.item_ids, scale, state)
    return run
