"""The outer loop: meta-batches of training tasks, meta-gradients, optimizer, EMA, logs, grids, checkpoints.

    >>> from metagan.config import get_preset
    >>> run_dir = train(get_preset("tiny"), out_dir="runs")

A run folder `runs/<NNNNN>-<name>/` holds config.json (the resolved config), log.jsonl (one JSON line
per logged step: losses, timings), samples-<step>.png (each row a held-out class: its K real support
examples, then generated samples after adaptation) and checkpoint.safetensors.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils._pytree import tree_map
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed
from .adapt import adapt_params
from .config import PAIRED, Config, ModelConfig
from .data import TaskSampler, build_datasets, files_inverted, fit_config, from_model_space, save_grid
from .errors import CheckpointError, ConfigError, TrainingDiverged
from .functional import Meta, all_finite, detach, global_norm
from .meta import meta_gradients, sample_noise
from .meta.problem import other_classes
from .models import build_models
from .system import System, build_system, init_meta
from .threads import model_threads

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def new_run_dir(out_dir: str | Path, name: str) -> Path:
    """runs/00000-name, runs/00001-name, ...: the next free number."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
    run = out / f"{max(ids, default=-1) + 1:05d}-{name}"
    run.mkdir()
    return run


def make_optimizer(cfg: Config, meta: Meta) -> tuple[torch.optim.Optimizer, list[str]]:
    """One optimizer over all meta-parameters; a param group per player (and for learned rates)."""
    m = cfg.meta
    lrs = {"g": m.outer_lr_g, "d": m.outer_lr_d, "lr_g": m.outer_lr_rates, "lr_d": m.outer_lr_rates}
    groups, order = [], []
    for group, params in meta.items():
        groups.append({"params": list(params.values()), "lr": lrs[group]})
        order += [f"{group}.{k}" for k in params]
    if m.outer_optimizer == "adam":
        return torch.optim.Adam(groups, betas=(m.beta1, m.beta2)), order
    return torch.optim.SGD(groups), order


@dataclass
class TrainState:
    meta: Meta  # leaf tensors the optimizer owns
    ema: dict
    optimizer: torch.optim.Optimizer
    param_order: list[str]
    rng: torch.Generator
    step: int = 0


def available_device(name: str, setting: str = "train.device=") -> torch.device:
    """torch.device(name), or a ConfigError naming `setting` (how the user chose it) when CUDA is absent."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting}{name}: no CUDA device is available here; use {setting}cpu")
    return dev


def device_of(cfg: Config) -> torch.device:
    return available_device(cfg.train.device)


def init_state(system: System) -> TrainState:
    cfg = system.cfg
    meta = init_meta(system, cfg.train.seed, DTYPES[cfg.train.dtype])
    dev = device_of(cfg)
    meta = tree_map(lambda t: t.to(dev).clone().requires_grad_(True), meta)
    ema = {"g": detach(tree_map(torch.clone, meta["g"]))} if cfg.train.ema > 0 else {}
    opt, order = make_optimizer(cfg, meta)
    rng = torch.Generator().manual_seed(cfg.train.seed)
    return TrainState(meta, ema, opt, order, rng)


def _copy_in(state: TrainState, ck: ckpt.Checkpoint, groups) -> None:
    """Copy the meta-parameter `groups` of checkpoint `ck` (checked compatible) into `state`, and its EMA
    generator (the checkpoint's generator where it has no EMA)."""
    with torch.no_grad():
        for group in groups:
            for k, v in state.meta[group].items():
                v.copy_(ck.meta[group][k])
        source_g = ck.ema["g"] if ck.ema else ck.meta["g"]
        for k, v in state.ema.get("g", {}).items():
            v.copy_(source_g[k])


def restore_state(system: System, ck: ckpt.Checkpoint, source: str) -> TrainState:
    state = init_state(system)
    ckpt.check_compatible(ck.meta, state.meta, source)
    _copy_in(state, ck, tuple(state.meta))
    if ck.optimizer is not None:
        state.optimizer.load_state_dict(ck.optimizer)
    if ck.rng_state is not None:
        state.rng.set_state(ck.rng_state)
    state.step = ck.step
    return state


def warm_start(state: TrainState, source: str) -> None:
    """Start from checkpoint `source` (train.init_from): its discriminator, and its EMA generator (the
    generator it adapts and samples with; its raw one where it has no EMA) as both the generator and the EMA.
    Whatever else the learner meta-learns (Meta-SGD's rates) keeps its initial value.

    Not the raw generator: the EMA's decay warms up again from step 0 of the new run, so within ~20 steps the
    EMA would be the raw generator's, and a GAN's raw weights are the worse model (a joint run at step 1000, class
    fidelity on training classes: EMA 0.97, raw 0.79)."""
    ck, players = ckpt.load(ckpt.resolve(source)), ("g", "d")
    ckpt.check_compatible({g: ck.meta[g] for g in players if g in ck.meta}, {g: state.meta[g] for g in players},
                          f"train.init_from={source}")
    if ck.ema:
        ck = replace(ck, meta={**ck.meta, "g": ck.ema["g"]})
    _copy_in(state, ck, players)


def to_checkpoint(cfg: Config, state: TrainState) -> ckpt.Checkpoint:
    return ckpt.Checkpoint(cfg, state.step, detach(state.meta), state.ema, state.optimizer.state_dict(),
                           state.param_order, state.rng.get_state())


def sample_tasks(system: System, sampler: TaskSampler, rng: torch.Generator, dtype) -> dict:
    """A meta-batch: support (B, K, ...), query (B, Q, ...) and the noise of every task."""
    cfg = system.cfg
    batch = sampler.sample(rng, dtype=dtype)
    noise = sample_noise(cfg.task.meta_batch, system.learner.sched, cfg.task.k_shot, cfg.task.q_query,
                         system.problem.z_dim, rng, dtype)
    if cfg.loss.mismatch > 0:
        noise["other"] = other_classes(batch.support)
    tasks = {"support": batch.support, "query": batch.query, "noise": noise}
    dev = device_of(cfg)
    return tasks if dev.type == "cpu" else tree_map(lambda t: t.to(dev, non_blocking=True), tasks)


# meta.vectorize=auto. On CUDA vmap. On the CPU (`metagan perf throughput`, 1 thread, docs/performance.md), as
# ratios to the per-task autograd loop: first order, vmap is the faster of our two ways for every model (shipped
# Omniglot presets: vmap 0.95-1.21x, the torch.func loop 0.79-1.07x). Second order, unconditional generators: vmap
# pays while per-operator overhead dominates (MAML, meta-batch 8: digits-demo vmap 1.77x / loop 1.01x at 1.4 MFLOP
# per sample; Omniglot width 8 2.02x / 1.13x at 1.1 MFLOP; width 16 1.16x / 0.96x at 4.0 MFLOP) and loses once
# convolutions do (omniglot-figr and -dawson's networks, width 32, 14.8 MFLOP: vmap 0.69-1.19x, loop 1.05-1.32x,
# worst at meta-batch 32), while it holds every task's unrolled graph at once (58 MB per task). So auto runs
# second-order learners task by task on models above this many FLOPs per sample (one G and one D forward)...
VMAP_MAX_SAMPLE_FLOPS = 8e6
# ...except the warp generator (model.condition=image), whose many small operations (encoder,
# field upsampling, resampling) vmap groups: at the shipped presets' size (width 32, 15.3 MFLOP) second-order MAML
# measured vmap 1.45x / loop 1.17x at meta-batch 4 and 1.54x / 1.12x at meta-batch 8 (2026-11-30, a shared 2-core
# CPU; docs/performance.md). Larger meta-batches were not measured, and vmap lost there on the unconditional
# networks, so auto takes vmap for the warp generators up to this meta-batch.
VMAP_MAX_WARP_META_BATCH = 8


@functools.lru_cache(maxsize=None)
def sample_flops(model: ModelConfig, shape: tuple[int, ...]) -> int:
    """FLOPs of one generator and one discriminator forward on one sample (K = 1 for a support context)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]):
        gen, disc = build_models(model, shape)
    x = torch.zeros(1, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        gen(torch.zeros(1, gen.z_dim), x)
        disc(x, x)
    return counter.get_total_flops()


def vectorize_mode(system: System) -> str:
    """How meta_gradients runs the tasks of a meta-batch: meta.vectorize, or for auto the measured choice."""
    cfg = system.cfg
    if cfg.meta.vectorize != "auto":
        return cfg.meta.vectorize
    if not getattr(system.learner, "second_order", False):
        return "vmap"
    if torch.device(cfg.train.device).type != "cpu":
        return "vmap"
    if cfg.model.condition in PAIRED and cfg.task.meta_batch <= VMAP_MAX_WARP_META_BATCH:
        return "vmap"
    return "vmap" if sample_flops(cfg.model, system.shape) < VMAP_MAX_SAMPLE_FLOPS else "loop"


def meta_step(system: System, state: TrainState, tasks: dict,
              dist: distributed.Dist = distributed.Dist()) -> dict[str, float]:
    """One outer step on this rank's tasks; meta-gradients are averaged over ranks. Raises
    TrainingDiverged (before touching any parameter) on NaN or inf."""
    return apply_step(system, state, *step_gradients(system, state, tasks, dist))


def step_gradients(system: System, state: TrainState, tasks: dict,
                   dist: distributed.Dist = distributed.Dist()) -> tuple[dict, dict[str, float]]:
    """The meta-gradients of one outer step (averaged over ranks) and its statistics; changes nothing."""
    grads, aux = meta_gradients(system.learner, detach(state.meta), tasks, vectorize_mode(system))
    grads, aux = distributed.all_reduce_mean((grads, aux), dist)
    return grads, {k: float(v) for k, v in aux.items()}


def apply_step(system: System, state: TrainState, grads: dict, stats: dict[str, float]) -> dict[str, float]:
    """The optimizer step, the clamp of learned rates and the EMA update: the state moves to the next step. Raises
    TrainingDiverged (before touching any parameter) on NaN or inf."""
    cfg = system.cfg
    if not all_finite(grads) or not all(math.isfinite(v) for v in stats.values()):
        bad = {k: v for k, v in stats.items() if not math.isfinite(v)} or "gradients"
        raise TrainingDiverged(
            f"non-finite values at step {state.step + 1}: {bad}. Nothing was written; the last checkpoint "
            "is intact. Lower meta.inner_lr_g/meta.inner_lr_d or meta.outer_lr_g/meta.outer_lr_d, or try "
            "loss.kind=wgan-gp, then resume or restart.")
    for group, g in grads.items():
        norm = global_norm(g)
        stats[f"gnorm_{group}"] = float(norm)
        for k, p in state.meta[group].items():
            p.grad = g[k]
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    if cfg.meta.clamp_rates:
        with torch.no_grad():
            for group in ("lr_g", "lr_d"):
                for p in state.meta.get(group, {}).values():
                    p.clamp_(min=0.0)
    decay = ema_decay(cfg.train.ema, state.step)
    with torch.no_grad():
        for k, v in state.ema.get("g", {}).items():
            v.lerp_(state.meta["g"][k], 1.0 - decay)
    state.step += 1
    return stats


def ema_decay(decay: float, updates: int) -> float:
    """Decay of the EMA generator after `updates` optimizer steps: min(decay, (1 + n) / (10 + n)).

    Without the warm-up the average of a short run is mostly the random initialisation (0.999^600 = 0.55
    of its weight after 600 steps), and every grid and evaluation of it shows noise."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def write_grid(system: System, state: TrainState, heldout, path: Path) -> None:
    """Each row a held-out class: its K real support examples, then generated samples."""
    cfg = system.cfg
    rng = torch.Generator().manual_seed(cfg.train.seed + 1)  # the same classes and noise every time
    n = min(cfg.train.grid_classes, heldout.num_classes)
    classes = torch.linspace(0, heldout.num_classes - 1, n).round().long().tolist()
    sampler = TaskSampler(heldout, cfg.task.k_shot, 0, 1)
    dtype = DTYPES[cfg.train.dtype]
    steps = cfg.train.adapt_steps or cfg.meta.inner_steps
    dev = device_of(cfg)
    rows = []
    for c in classes:
        support, _ = sampler.sample_class(c, rng, cfg.task.k_shot, 0)
        support = support.to(dtype)
        pg, _ = adapt_params(system, detach(state.meta), support, steps, rng, state.ema.get("g"))
        z = torch.randn(cfg.train.grid_samples, system.problem.z_dim, generator=rng, dtype=dtype)
        with torch.no_grad():
            fake = system.problem.generate(pg, z.to(dev), support.to(dev)).cpu()
        rows.append((support, fake) if not heldout.is_image else
                    torch.cat([from_model_space(support), from_model_space(fake)]))
    if not heldout.is_image:  # series: a plot, supports beside samples, in the data's units
        from .data.series import to_units
        from .data.series_plot import save_series_plot

        save_series_plot(path, [(to_units(s, cfg.data), to_units(f, cfg.data)) for s, f in rows],
                         [heldout.class_names[c] for c in classes])
        return
    save_grid(path, rows, invert=files_inverted(cfg.data),
              scale=max(1, 64 // cfg.data.image_size))


def train(cfg: Config, out_dir: str | Path | None = None, name: str = "run", resume: str | Path | None = None,
          progress: bool = True) -> Path:
    """Meta-train to cfg.train.steps (continuing from `resume`, a run folder or checkpoint, if given). Runs on
    train.threads intra-op threads, else $OMP_NUM_THREADS, else as many as the model's size pays for
    (metagan.threads); the caller's thread count is restored afterwards."""
    dist = distributed.init_from_env(device=cfg.train.device)
    try:
        with model_threads(cfg):
            return _train(cfg, out_dir, name, resume, progress, dist)
    finally:
        distributed.close(dist)


def _train(cfg: Config, out_dir, name: str, resume, progress: bool, dist: distributed.Dist) -> Path | None:
    cfg = replace(cfg, data=fit_config(cfg.data))  # series: the normalisation, fitted on training classes, stored
    system = build_system(cfg)
    train_ds, heldout = build_datasets(cfg.data)
    sampler = TaskSampler(train_ds, cfg.task.k_shot, cfg.task.q_query, cfg.task.meta_batch)
    distributed.per_rank(cfg.task.meta_batch, dist)
    if resume is not None:
        ck_path = ckpt.resolve(resume)
        run_dir = ck_path.parent
        ck = ckpt.load(ck_path)
        if ck.optimizer is None or ck.rng_state is None:
            raise CheckpointError(f"{resume} is an exported model (no optimizer or RNG state): it adapts and "
                                  "samples but cannot resume exactly; resume the run folder it was exported "
                                  "from, or start a new run with --preset")
        state = restore_state(system, ck, str(ck_path))
        if dist.is_main:
            ckpt.remove_stale_tmp(run_dir)
            trim_log(run_dir / "log.jsonl", ck.step)
    else:
        run_dir = new_run_dir(out_dir or cfg.train.out_dir, name) if dist.is_main else None
        state = init_state(system)
        if cfg.train.init_from:
            warm_start(state, cfg.train.init_from)
    if not dist.is_main:
        return _follow(system, state, sampler, dist)
    (run_dir / "config.json").write_text(cfg.to_json())
    bar = tqdm(total=cfg.train.steps, initial=state.step, disable=not progress, unit="step",
               dynamic_ncols=True, desc=run_dir.name)
    start_step = state.step
    try:
        with _Interrupts() as interrupts:
            _loop(system, state, sampler, heldout, run_dir, bar, interrupts, dist)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_save_interrupted(cfg, state, run_dir)) from None
    finally:
        bar.close()
    if state.step == start_step and not (run_dir / ckpt.FILENAME).exists():
        ckpt.save(run_dir, to_checkpoint(cfg, state))
    return run_dir


def _loop(system: System, state: TrainState, sampler: TaskSampler, heldout, run_dir: Path, bar,
          interrupts: _Interrupts, dist: distributed.Dist) -> None:
    """Steps to cfg.train.steps, logging, drawing grids and writing checkpoints on their cadences. Ctrl-C stops
    it between steps (a step's meta-gradient is dropped, the task generator rewound), never within an update."""
    cfg, dtype = system.cfg, DTYPES[system.cfg.train.dtype]
    t_start = time.perf_counter()
    with open(run_dir / "log.jsonl", "a") as log:
        while state.step < cfg.train.steps:
            t0, rng_before = time.perf_counter(), state.rng.get_state()
            try:
                with interrupts.immediate():
                    tasks = distributed.shard(sample_tasks(system, sampler, state.rng, dtype), dist,
                                              cfg.task.meta_batch)
                    grads, stats = step_gradients(system, state, tasks, dist)
            except KeyboardInterrupt:
                state.rng.set_state(rng_before)  # the step did not happen: its tasks are drawn again on resume
                raise
            stats = apply_step(system, state, grads, stats)
            dt = time.perf_counter() - t0
            step = state.step
            if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                rec = {"step": step, **{k: round(v, 6) for k, v in stats.items()},
                       "sec_per_step": round(dt, 4), "tasks_per_s": round(cfg.task.meta_batch / dt, 2),
                       "elapsed_s": round(time.perf_counter() - t_start, 2)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix(d=f"{stats.get('d_loss', stats.get('inner_d', 0)):.3f}",
                                g=f"{stats.get('g_loss', stats.get('inner_g', 0)):.3f}")
            bar.update(1)
            last = step == cfg.train.steps
            if (cfg.train.sample_every and step % cfg.train.sample_every == 0) or last:
                write_grid(system, state, heldout, run_dir / f"samples-{step:06d}.png")
            due, keep = _checkpoint_due(cfg, step), bool(cfg.train.keep_every and step % cfg.train.keep_every == 0)
            if due or keep:
                ck = to_checkpoint(cfg, state)
                if due:
                    _check_in_sync(state, dist)
                    ckpt.save(run_dir, ck)
                if keep:
                    ckpt.save(run_dir / f"checkpoint-{step:06d}.safetensors", ck)
            interrupts.check()


def _save_interrupted(cfg: Config, state: TrainState, run_dir: Path) -> str:
    """After Ctrl-C: write the checkpoint of the step training stopped on and say where. A second Ctrl-C during
    the write leaves the previous checkpoint whole."""
    path = run_dir / ckpt.FILENAME
    try:
        ckpt.save(path, to_checkpoint(cfg, state))
    except KeyboardInterrupt:
        return f"interrupted again while writing {path}; the previous checkpoint there is intact"
    return (f"stopped at step {state.step}, checkpoint written to {path}; continue with "
            f"`metagan train --resume {run_dir}`")


class _Interrupts:
    """Ctrl-C (SIGINT) during training. Inside `immediate()` (drawing tasks and computing a meta-gradient, which
    change nothing) it raises KeyboardInterrupt at once; elsewhere (updating parameters, logging, writing) it is
    held until `check()` at the end of the step, so a checkpoint never holds a half-applied or unlogged step.
    Only in the main thread, and only where nobody else handles SIGINT; otherwise Python's default applies."""

    def __init__(self) -> None:
        self.pending = self.now = False
        self.installed = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.installed = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.installed is not None:
            signal.signal(signal.SIGINT, self.installed)

    def _handle(self, signum, frame) -> None:
        if self.now:
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def immediate(self):
        self.check()
        self.now = True
        try:
            yield
        finally:
            self.now = False

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def trim_log(path: Path, step: int) -> None:
    """Drop the lines of log.jsonl after `step`, the step a run resumes from, so that every step is logged once
    (they were logged after the checkpoint was written, and are run again); a line cut short by a kill goes too."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            logged = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(logged, int) and logged <= step:
            keep.append(line + "\n")
    if len(keep) != len(lines):
        ckpt.write_atomic(path, lambda tmp: tmp.write_text("".join(keep)))


def _follow(system: System, state: TrainState, sampler: TaskSampler, dist: distributed.Dist) -> None:
    """A rank other than 0: the same steps on its share of the tasks, writing nothing."""
    cfg = system.cfg
    while state.step < cfg.train.steps:
        tasks = distributed.shard(sample_tasks(system, sampler, state.rng, DTYPES[cfg.train.dtype]), dist,
                                  cfg.task.meta_batch)
        meta_step(system, state, tasks, dist)
        if _checkpoint_due(cfg, state.step):
            _check_in_sync(state, dist)
    return None


def _checkpoint_due(cfg: Config, step: int) -> bool:
    """Rank 0 writes a checkpoint after this step (every rank checks the parameters are in sync)."""
    return bool(cfg.train.ckpt_every and step % cfg.train.ckpt_every == 0) or step == cfg.train.steps


def _check_in_sync(state: TrainState, dist: distributed.Dist) -> None:
    distributed.check_in_sync([p for g in state.meta.values() for p in g.values()], dist)


__all__ = ["train", "meta_step", "step_gradients", "apply_step", "init_state", "restore_state", "new_run_dir",
           "trim_log"]
