"""Meta-training on topics with metagan's meta-learners and outer step; adaptation to a topic; replies.

    >>> joint = train(get_preset("dialogue-joint"), out_dir="runs")        # runs/00000-dialogue-joint/
    >>> cfg = apply_overrides(get_preset("dialogue-gan-fomaml"), [f"train.init_from={joint}"])
    >>> run = train(cfg, out_dir="runs")                                   # warm-started from the joint model
    >>> run = train(cfg, resume=run)                                       # continue exactly where it stopped
    >>> cfg, step, meta, _ = read(run)                                     # the validation-best meta-parameters

The run folder is the shared loop's (domain_loop): config.json, log.jsonl, checkpoint.safetensors (the last step,
with optimizer and RNG state: resuming is exact) and best.safetensors (the validation step with the lowest held-out
NLL per byte: validation topics, 5-shot supports, their query replies; what `read` of the folder returns).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from .. import checkpoint as ckpt
from ..domain_loop import DomainLoop, fit, resume_point, run_folder
from ..errors import CheckpointError
from ..functional import Meta, Params, detach, params_of
from ..meta import build_learner, sample_noise
from ..meta.problem import InnerSchedule
from .config import DialogueConfig, config_from_json
from .data import Topic, load_corpus
from .models import PairDiscriminator, ReplyGenerator
from .problem import DialogueProblem
from .tasks import TaskSampler, encode, heldout_parts, make_split
from .tokens import split as split_rows

FORMAT = ckpt.DomainFormat("metagan-dialogue-1", "dialogue", "dialogue-...", config_from_json)
VALID_K = 5


@dataclass
class DialogueSystem:
    """The parts a config names: the problem (with its networks) and the meta-learner."""

    cfg: DialogueConfig
    problem: DialogueProblem
    learner: object


def _networks(cfg: DialogueConfig) -> tuple[ReplyGenerator, PairDiscriminator]:
    m = cfg.model
    return (ReplyGenerator(m.embed, m.hidden, m.z_dim, cfg.data.reply_len, eos_grad=m.eos_grad, copy=m.copy),
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
                 temperature: float | None = None, support: Tensor | None = None) -> Tensor:
    """Sampled replies (N, Lr) int64 to prompts (N, Lp), latents and Gumbel noise from `generator`; support: the
    exchanges (K, Lp + Lr) a retrieve-and-edit generator reads (model.copy; ignored otherwise)."""
    prob = system.problem
    z = torch.randn(prompts.shape[0], prob.gen.noise_dim(True), generator=generator)
    with torch.no_grad():
        y = prob.sample(pg, prompts, z, temperature or system.cfg.model.temperature,
                        memory=prob.memory(support, n=prompts.shape[0]))
    return y.argmax(-1)


def nll_bytes(system: DialogueSystem, pg: Params, rows: Tensor, support: Tensor | None = None
              ) -> tuple[float, int]:
    """(summed NLL in nats, number of reply bytes) of rows (N, Lp + Lr) at z = 0, the latent's mean; support as
    reply_tokens'."""
    with torch.no_grad():
        mean = system.problem.nll(pg, rows, torch.zeros(rows.shape[0], system.problem.gen.z_dim), support)
    n = int((split_rows(rows, system.cfg.data.prompt_len)[1] != 256).sum())
    return float(mean) * n, n


def validate(system: DialogueSystem, meta: Meta, topics: list[Topic], seed: int = 0) -> float:
    """Mean NLL per reply byte of validation topics' query replies after adapting to 5 of their exchanges."""
    d, total, count = system.cfg.data, 0.0, 0
    steps = system.cfg.train.adapt_steps or system.cfg.meta.inner_steps
    for i, t in enumerate(topics):
        held = heldout_parts(t, seed)
        support = encode(held.pool[:VALID_K], d.prompt_len, d.reply_len)
        pg, _ = adapt(system, meta, support, steps, torch.Generator().manual_seed(seed + i))
        s, n = nll_bytes(system, pg, encode(held.query, d.prompt_len, d.reply_len), support)
        total, count = total + s, count + n
    return total / max(count, 1)


def read(path: str | Path, last: bool = False) -> tuple[DialogueConfig, int, Meta, dict[str, str]]:
    """(config, step, meta-parameters, the checkpoint's own metadata) of a dialogue checkpoint; a run folder reads
    best.safetensors (last: checkpoint.safetensors). Reads tensors and JSON only."""
    ck = ckpt.load_domain(path, FORMAT, last)
    return ck.config, ck.step, ck.meta, ck.metadata


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


def train(cfg: DialogueConfig, out_dir: str | Path | None = None, name: str = "dialogue",
          resume: str | Path | None = None, topics: list[Topic] | None = None, log=None) -> Path:
    """Meta-train to cfg.train.steps on the training topics; validate and checkpoint every ckpt_every steps.
    resume: a run folder to continue (its own config, with this cfg's train section). A new run starts from
    train.init_from where it names one (warm_start)."""
    cfg, last = resume_point(cfg, resume, FORMAT)
    system = build_system(cfg)
    split = load_split(cfg, topics)
    fresh = init_meta(system, cfg.train.seed)
    if last is None and cfg.train.init_from:
        fresh = warm_start(fresh, cfg.train.init_from)
    t = cfg.task
    sampler = TaskSampler(split["train"], t.k_shot, t.query, cfg.data.prompt_len, cfg.data.reply_len)

    def draw(rng: torch.Generator) -> dict:
        # task.k_min: every meta-batch draws its support size from k_min..k_shot, so one model serves every K
        k = int(torch.randint(t.k_min, t.k_shot + 1, (1,), generator=rng)) if t.k_min else t.k_shot
        batch = sampler.sample(t.meta_batch, rng, k)
        batch["noise"] = sample_noise(batch["support"].shape[0], system.learner.sched, k, t.query,
                                      system.problem.z_dim, rng)
        return batch

    def valid(meta: Meta) -> tuple[dict, float, str]:
        nll = validate(system, meta, split["valid"]) if split["valid"] else float("nan")
        return {"valid_nll": nll}, nll, f"valid NLL {nll:.4f} nats/byte"

    run = run_folder(cfg, out_dir, name, resume, last)
    with model_threads(cfg):
        return fit(system, DomainLoop(FORMAT, draw, valid), fresh, last, run, log)
