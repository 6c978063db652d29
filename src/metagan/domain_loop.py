"""The training loop of the domains beside images (ratings, dialogue): meta-batches from the domain's task stream,
metagan's meta-gradients and outer step (train.apply_step), logs, validation, the best and the last checkpoint,
exact resume.

    >>> cfg, last = resume_point(cfg, resume, FORMAT)              # resume: None, or a run folder to continue
    >>> system, fresh = ..., ...                                   # the domain's networks, learner, initial weights
    >>> run = run_folder(cfg, "runs", "dialogue-joint", resume, last)
    >>> fit(system, DomainLoop(FORMAT, draw, validate), fresh, last, run)

A run folder holds config.json, log.jsonl (one line per logged step and one per validation),
checkpoint.safetensors (the last validated step: meta-parameters, optimizer and RNG state; resuming from it repeats
an uninterrupted run exactly: the same parameters to the bit) and best.safetensors (the meta-parameters of the
validation with the lowest loss).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_map

from . import checkpoint as ckpt
from .checkpoint import DomainCheckpoint, DomainFormat
from .errors import CheckpointError
from .functional import Meta, detach
from .meta import meta_gradients
from .train import TrainState, apply_step, make_optimizer, new_run_dir, trim_log


@dataclass
class DomainLoop:
    """What a domain gives the loop."""

    fmt: DomainFormat
    draw: Callable[[torch.Generator], dict]                # the next meta-batch (support, query, noise) from it
    validate: Callable[[Meta], tuple[dict, float, str]]    # (log fields, loss: lower is better, NaN: none; summary)
    metadata: dict[str, str] = field(default_factory=dict)  # written into every checkpoint (ratings: item ids)


def resume_point(cfg: Any, resume: str | Path | None, fmt: DomainFormat) -> tuple[Any, DomainCheckpoint | None]:
    """(cfg, None) for a new run; for `resume` (a run folder or its checkpoint file), the run's own config with
    cfg's train section (train.steps says how far to go) and its last checkpoint. Reads only."""
    if resume is None:
        return cfg, None
    last = ckpt.load_domain(_folder(resume), fmt, last=True)
    if last.optimizer is None or last.rng_state is None:
        raise CheckpointError(f"{resume} holds no optimizer or RNG state, so it cannot resume: pass the run folder, "
                              f"or start a new run with --preset {fmt.presets}")
    return replace(last.config, train=cfg.train), last


def run_folder(cfg: Any, out_dir: str | Path | None, name: str, resume: str | Path | None,
               last: DomainCheckpoint | None) -> Path:
    """A new numbered run folder under out_dir (default cfg.train.out_dir), or the folder of `resume` with its log
    cut back to the step of `last` (the steps after it run again); config.json written in either."""
    if resume is None:
        run = new_run_dir(out_dir or cfg.train.out_dir, name)
    else:
        run = _folder(resume)
        ckpt.remove_stale_tmp(run)
        trim_log(run / "log.jsonl", last.step if last else 0)
    (run / "config.json").write_text(cfg.to_json())
    return run


def _folder(resume: str | Path) -> Path:
    p = Path(resume)
    return p if p.is_dir() else p.parent


def start_state(cfg: Any, fresh: Meta, last: DomainCheckpoint | None) -> TrainState:
    """The training state: `fresh` meta-parameters, a new optimizer and the task stream seeded with train.seed; or
    the meta-parameters, optimizer moments and task stream of `last`, where they stopped."""
    meta = fresh
    if last is not None:  # in fresh's order: the optimizer's state is indexed by it
        ckpt.check_compatible(last.meta, fresh, f"the run's {ckpt.FILENAME}")
        meta = {group: {k: last.meta[group][k] for k in params} for group, params in fresh.items()}
    meta = tree_map(lambda t: t.clone().requires_grad_(True), meta)
    opt, order = make_optimizer(cfg, meta)
    rng = torch.Generator().manual_seed(cfg.train.seed)
    if last is not None:
        opt.load_state_dict(last.optimizer)
        rng.set_state(last.rng_state)
    return TrainState(meta, {}, opt, order, rng, last.step if last is not None else 0)


def best_loss(last: DomainCheckpoint | None) -> float | None:
    """The best validation loss a run had reached at checkpoint `last` (None: unknown, a new run)."""
    if last is None:
        return None
    md = last.metadata  # dialogue checkpoints of metagan 0.2 kept it as JSON inside "extra"
    return json.loads(md.get("best") or json.loads(md.get("extra") or "{}").get("best") or "null")


def fit(system: Any, loop: DomainLoop, fresh: Meta, last: DomainCheckpoint | None, run: Path,
        log: Callable[[str], None] | None = None) -> Path:
    """Meta-train `system` (its cfg, learner and problem) to cfg.train.steps from `fresh` or checkpoint `last`;
    log every log_every steps; validate and checkpoint every ckpt_every steps and at the end."""
    cfg = system.cfg
    state, best = start_state(cfg, fresh, last), best_loss(last)
    t0 = time.perf_counter()
    with open(run / "log.jsonl", "a") as logf:
        while state.step < cfg.train.steps:
            batch = loop.draw(state.rng)
            grads, aux = meta_gradients(system.learner, detach(state.meta), batch, cfg.meta.vectorize)
            stats = apply_step(system, state, grads, {k: float(v) for k, v in aux.items()})
            if state.step % cfg.train.log_every == 0:
                logf.write(json.dumps({"step": state.step, "time": round(time.perf_counter() - t0, 2), **stats}) + "\n")
            if state.step % cfg.train.ckpt_every == 0 or state.step == cfg.train.steps:
                fields, loss, summary = loop.validate(detach(state.meta))
                logf.write(json.dumps({"step": state.step, **fields}) + "\n")
                logf.flush()
                if log:
                    log(f"{run.name} step {state.step}: {summary}")
                if best is None or not loss >= best:  # NaN (nothing to validate on): keep the latest
                    best = loss
                    ckpt.save_domain(run / ckpt.BEST, loop.fmt, DomainCheckpoint(
                        cfg, state.step, detach(state.meta), metadata=loop.metadata))
                ckpt.save_domain(run / ckpt.FILENAME, loop.fmt, DomainCheckpoint(
                    cfg, state.step, detach(state.meta), state.optimizer.state_dict(), state.rng.get_state(),
                    {**loop.metadata, "best": json.dumps(best)}))
    return run
