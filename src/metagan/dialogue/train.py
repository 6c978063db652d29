"""Meta-training on topics with metagan's meta-learners and outer step; adaptation to a topic; replies.

    >>> joint = train(get_preset("dialogue-joint"), out_dir="runs")        # runs/00000-dialogue-joint/
    >>> cfg = apply_overrides(get_preset("dialogue-gan-fomaml"), [f"train.init_from={joint}"])
    >>> run = train(cfg, out_dir="runs")                                   # warm-started from the joint model
    >>> run = train(cfg, resume=run)                                       # continue exactly where it stopped
    >>> cfg, step, meta, _ = read(run)                                     # the validation-best meta-parameters

A run folder holds config.json, log.jsonl (one line per logged step and one per validation), checkpoint.safetensors
(the last step: meta-parameters, optimizer and RNG state; resuming from it repeats an uninterrupted run exactly)
and best.safetensors (the meta-parameters of the validation step with the lowest held-out NLL per byte: validation
topics, 5-shot supports, their query replies; what `read` of the folder returns).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils._pytree import tree_map

from .. import checkpoint as ckpt
from ..errors import CheckpointError
from ..functional import Meta, Params, detach, flatten, params_of, unflatten
from ..meta import build_learner, meta_gradients, sample_noise
from ..meta.problem import InnerSchedule
from ..train import TrainState, apply_step, make_optimizer, new_run_dir, trim_log
from .config import DialogueConfig, config_from_json
from .data import Topic, load_corpus
from .models import PairDiscriminator, ReplyGenerator
from .problem import DialogueProblem
from .tasks import TaskSampler, encode, heldout_parts, make_split
from .tokens import split as split_rows

FORMAT = "metagan-dialogue-1"
VALID_K = 5


@dataclass
class DialogueSystem:
    """The parts a config names: the problem (with its networks) and the meta-learner."""

    cfg: DialogueConfig
    problem: DialogueProblem
    learner: object


def _networks(cfg: DialogueConfig) -> tuple[ReplyGenerator, PairDiscriminator]:
    m = cfg.model
    return (ReplyGenerator(m.embed, m.hidden, m.z_dim, cfg.data.reply_len, eos_grad=m.eos_grad),
            PairDiscriminator(m.embed, m.hidden))


@contextlib.contextmanager
def model_threads(cfg: DialogueConfig):
    """Run the block on train.threads intra-op threads, else on the caller's $OMP_NUM_THREADS, else on 1 thread
    (these models are far below metagan.threads.PARALLEL_MIN_SAMPLE_FLOPS: a second thread adds a fork and join to
    every small operator, and spins at each while another process holds the other core); restores the count."""
    n = cfg.train.threads or (None if os.environ.get("OMP_NUM_THREADS", "").strip() else 1)
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def build_system(cfg: DialogueConfig) -> DialogueSystem:
    with torch.random.fork_rng(devices=[]):
        gen, disc = _networks(cfg)
    problem = DialogueProblem(gen, disc, cfg.loss, cfg.data.prompt_len, cfg.model.tau)
    return DialogueSystem(cfg, problem, build_learner(cfg, problem))


def init_meta(system: DialogueSystem, seed: int) -> Meta:
    """Fresh meta-parameters drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen, disc = _networks(system.cfg)
    return system.learner.init_meta(params_of(gen), params_of(disc))


def load_split(cfg: DialogueConfig, topics: list[Topic] | None = None) -> dict[str, list[Topic]]:
    topics = topics if topics is not None else load_corpus(None if cfg.data.source == "chatterbot" else
                                                           cfg.data.source)
    return make_split(topics, cfg.data.min_exchanges, cfg.data.split_seed)


def adapt(system: DialogueSystem, meta: Meta, support: Tensor, steps: int, generator: torch.Generator
          ) -> tuple[Params, Params]:
    """Adapted (generator, discriminator) parameters after `steps` inner steps on support rows (K, Lp + Lr) from
    the meta-parameters, with the learner's rates (a joint model: the config's, i.e. fine-tuning)."""
    cfg = system.cfg
    if steps == 0:
        return detach(meta["g"]), detach(meta["d"])
    sched = InnerSchedule(steps, cfg.meta.n_d, cfg.meta.n_g)
    k = support.shape[0]
    noise = tree_map(lambda t: t[0], sample_noise(1, sched, k, 1, system.problem.z_dim, generator))
    lr_g, lr_d = system.learner.rates(meta)
    meta = detach(meta)
    pg, pd, _ = system.problem.inner_loop(meta["g"], meta["d"], detach(lr_g), detach(lr_d), support, noise, sched,
                                          True)
    return detach(pg), detach(pd)


def reply_tokens(system: DialogueSystem, pg: Params, prompts: Tensor, generator: torch.Generator,
                 temperature: float | None = None) -> Tensor:
    """Sampled replies (N, Lr) int64 to prompts (N, Lp), latents and Gumbel noise from `generator`."""
    gen = system.problem.gen
    z = torch.randn(prompts.shape[0], gen.noise_dim(True), generator=generator)
    with torch.no_grad():
        y = system.problem.sample(pg, prompts, z, temperature or system.cfg.model.temperature)
    return y.argmax(-1)


def nll_bytes(system: DialogueSystem, pg: Params, rows: Tensor) -> tuple[float, int]:
    """(summed NLL in nats, number of reply bytes) of rows (N, Lp + Lr) at z = 0, the latent's mean."""
    with torch.no_grad():
        mean = system.problem.nll(pg, rows, torch.zeros(rows.shape[0], system.problem.gen.z_dim))
    n = int((split_rows(rows, system.cfg.data.prompt_len)[1] != 256).sum())
    return float(mean) * n, n


def validate(system: DialogueSystem, meta: Meta, topics: list[Topic], seed: int = 0) -> float:
    """Mean NLL per reply byte of validation topics' query replies after adapting to 5 of their exchanges."""
    d, total, count = system.cfg.data, 0.0, 0
    steps = system.cfg.train.adapt_steps or system.cfg.meta.inner_steps
    for i, t in enumerate(topics):
        held = heldout_parts(t, seed)
        pg, _ = adapt(system, meta, encode(held.pool[:VALID_K], d.prompt_len, d.reply_len), steps,
                      torch.Generator().manual_seed(seed + i))
        s, n = nll_bytes(system, pg, encode(held.query, d.prompt_len, d.reply_len))
        total, count = total + s, count + n
    return total / max(count, 1)


def save(path: Path, cfg: DialogueConfig, step: int, meta: Meta, state: TrainState | None = None,
         extra: dict | None = None) -> Path:
    """Meta-parameters (and with `state`, the optimizer and RNG) written atomically."""
    tensors = {f"meta.{k}": v.detach().contiguous() for k, v in flatten(meta).items()}
    metadata = {"format": FORMAT, "step": str(step), "config": cfg.to_json(), "extra": json.dumps(extra or {})}
    if state is not None:
        opt = state.optimizer.state_dict()
        for i, s in opt["state"].items():
            tensors.update({f"opt.{i}.{k}": v for k, v in s.items() if isinstance(v, Tensor)})
        tensors["rng"] = state.rng.get_state()
        metadata["opt_groups"] = json.dumps(opt["param_groups"])
    ckpt.write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def read(path: str | Path, last: bool = False) -> tuple[DialogueConfig, int, Meta, dict]:
    """(config, step, meta-parameters, the rest: opt.*, rng, opt_groups, extra) of a dialogue checkpoint; a run
    folder reads best.safetensors (last: checkpoint.safetensors). Reads tensors and JSON only."""
    p = Path(path)
    if p.is_dir():
        best = p / "best.safetensors"
        p = best if best.is_file() and not last else p / ckpt.FILENAME
    if not p.is_file():
        raise CheckpointError(f"no dialogue checkpoint at {path}: pass a run folder of `metagan train --preset "
                              "dialogue-...` or its .safetensors file")
    try:
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
            if md.get("format") != FORMAT:
                raise CheckpointError(f"{p} is not a dialogue checkpoint (format {md.get('format')!r:.40}); "
                                      "replies need a model trained with --preset dialogue-...")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        cfg, step = config_from_json(md["config"]), int(md["step"])
        extra = {k: v for k, v in tensors.items() if not k.startswith("meta.")}
        extra["opt_groups"] = json.loads(md.get("opt_groups", "[]"))
        extra["extra"] = json.loads(md.get("extra", "{}"))
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{p} is not a readable dialogue checkpoint ({str(e)[:120]}): retrain it") from None
    return cfg, step, unflatten({k[5:]: v for k, v in tensors.items() if k.startswith("meta.")}), extra


def warm_start(fresh: Meta, source: str | Path) -> Meta:
    """`fresh` meta-parameters with the generator and discriminator of dialogue run or checkpoint `source`
    (train.init_from; a run folder gives its validation-best); what the source lacks (Meta-SGD's rates) keeps its
    fresh value. Shapes must match."""
    _, _, src, _ = read(source)
    out = {group: dict(params) for group, params in fresh.items()}
    for group in ("g", "d"):
        for k, v in src.get(group, {}).items():
            if k not in out[group] or out[group][k].shape != v.shape:
                raise CheckpointError(f"train.init_from={source}: its {group}.{k} {tuple(v.shape)} does not fit "
                                      f"this model ({tuple(out[group][k].shape) if k in out[group] else 'absent'});"
                                      " start from a run of the same model sizes (model.*, data.reply_len)")
            out[group][k] = v.clone()
    return out


def _state(cfg: DialogueConfig, meta: Meta, extra: dict | None, step: int) -> TrainState:
    meta = tree_map(lambda t: t.clone().requires_grad_(True), meta)
    opt, order = make_optimizer(cfg, meta)
    rng = torch.Generator().manual_seed(cfg.train.seed)
    if extra is not None:  # resuming: optimizer moments and the task/noise stream where they stopped
        state = {int(k.split(".")[1]): {} for k in extra if k.startswith("opt.")}
        for k, v in extra.items():
            if k.startswith("opt."):
                _, i, name = k.split(".", 2)
                state[int(i)][name] = v
        opt.load_state_dict({"state": state, "param_groups": extra["opt_groups"]})
        rng.set_state(extra["rng"])
    return TrainState(meta, {}, opt, order, rng, step)


def train(cfg: DialogueConfig, out_dir: str | Path | None = None, name: str = "dialogue",
          resume: str | Path | None = None, topics: list[Topic] | None = None, log=None) -> Path:
    """Meta-train to cfg.train.steps on the training topics; validate and checkpoint every ckpt_every steps.
    resume: a run folder to continue (its own config, with this cfg's train.steps)."""
    if resume is not None:
        run = Path(resume)
        old, step, meta, extra = read(run, last=True)
        cfg = replace(old, train=cfg.train)
        trim_log(run / "log.jsonl", step)
        best = json.loads((extra["extra"] or {}).get("best", "null") or "null")
    else:
        run = new_run_dir(out_dir or cfg.train.out_dir, name)
        (run / "config.json").write_text(cfg.to_json())
        meta, extra, step, best = None, None, 0, None
    system = build_system(cfg)
    split = load_split(cfg, topics)
    with model_threads(cfg):
        return _train_loop(cfg, run, system, split, meta, extra, step, best, log)


def _train_loop(cfg: DialogueConfig, run: Path, system: DialogueSystem, split: dict, meta, extra, step: int, best,
                log) -> Path:
    t = cfg.task
    fresh = init_meta(system, cfg.train.seed)
    if meta is None and cfg.train.init_from:
        fresh = warm_start(fresh, cfg.train.init_from)
    if meta is not None:  # the optimizer indexes parameters in the order init_meta gives them
        meta = {group: {k: meta[group][k] for k in params} for group, params in fresh.items()}
    state = _state(cfg, meta if meta is not None else fresh, extra, step)
    sampler = TaskSampler(split["train"], t.k_shot, t.query, cfg.data.prompt_len, cfg.data.reply_len)
    t0 = time.perf_counter()
    with open(run / "log.jsonl", "a") as logf:
        while state.step < cfg.train.steps:
            batch = sampler.sample(t.meta_batch, state.rng)
            batch["noise"] = sample_noise(batch["support"].shape[0], system.learner.sched, t.k_shot, t.query,
                                          system.problem.z_dim, state.rng)
            grads, aux = meta_gradients(system.learner, detach(state.meta), batch, cfg.meta.vectorize)
            stats = apply_step(system, state, grads, {k: float(v) for k, v in aux.items()})
            if state.step % cfg.train.log_every == 0:
                logf.write(json.dumps({"step": state.step, "time": round(time.perf_counter() - t0, 2), **stats}) + "\n")
            if state.step % cfg.train.ckpt_every == 0 or state.step == cfg.train.steps:
                valid = validate(system, detach(state.meta), split["valid"]) if split["valid"] else float("nan")
                logf.write(json.dumps({"step": state.step, "valid_nll": valid}) + "\n")
                logf.flush()
                if log:
                    log(f"{run.name} step {state.step}: valid NLL {valid:.4f} nats/byte")
                if best is None or not valid >= best:  # NaN (no validation topics): keep the latest
                    best = valid
                    save(run / "best.safetensors", cfg, state.step, detach(state.meta))
                save(run / ckpt.FILENAME, cfg, state.step, detach(state.meta), state, {"best": json.dumps(best)})
    return run
