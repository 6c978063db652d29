"""Adaptation: K examples of a new class in, an adapted generator out.

    >>> model = load("runs/00000-digits-demo")              # or a checkpoint file
    >>> adapted = model.adapt(support, steps=10, generator=torch.Generator().manual_seed(0))
    >>> images = adapted.sample(64, torch.Generator().manual_seed(1))   # (64, C, H, W) in [-1, 1]

`support` is (K, C, H, W) in model space ([-1, 1], ink bright); `read_support` reads image files the
way the training data were read, and refuses ones that cannot be a drawing of a class (blank, tiny, transparent,
inverted). `sample` generates in batches of `SAMPLE_BATCH`, so its memory is the output's plus one batch.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from . import checkpoint as ckpt
from .config import Config
from .data import files_inverted, is_series, to_model_space
from .data.images import read_support_image
from .errors import ConfigError, DataError
from .functional import Meta, Params, detach, rate_at
from .meta import GanProblem, InnerSchedule, sample_noise
from .system import System, build_system, init_meta


SAMPLE_BATCH = 256  # images generated (and candidates scored) at a time by AdaptedGenerator.sample
MAX_SELECT = 1000  # --select: R x num candidates are generated and scored
MAX_SUPPORT = 100  # K: every adaptation step runs G and D over all K images
SUPPORT_WARN_FACTOR = 4  # K above this many times the task.k_shot the model was meta-trained with: a warning
POLARITIES = ("auto", "dark-on-light", "light-on-dark")


def check_select(select: float, name: str = "select") -> None:
    """The selection ratio of AdaptedGenerator.sample (and of the commands that pass it on): 1 <= R <= MAX_SELECT."""
    if not (math.isfinite(select) and 1.0 <= select <= MAX_SELECT):
        raise ConfigError(f"{name} is the ratio of drawn candidates to kept samples: use a value >= 1 (1 = no "
                          f"selection) and <= {MAX_SELECT} (R x the samples are generated and scored), got {select}")


def check_support_size(k: int, k_shot: int) -> str | None:
    """Refuse K > MAX_SUPPORT support images; return a warning when K is far above the model's task.k_shot."""
    if k < 1:
        raise DataError("adaptation needs at least one support example (K >= 1)")
    if k > MAX_SUPPORT:
        raise DataError(f"{k} support examples: at most {MAX_SUPPORT} are accepted (every adaptation step runs the "
                        f"generator and discriminator over all of them, and this model was meta-trained with "
                        f"K = {k_shot}); pass the {k_shot} to {SUPPORT_WARN_FACTOR * k_shot} most typical ones")
    if k > SUPPORT_WARN_FACTOR * k_shot:
        return (f"{k} support examples, more than {SUPPORT_WARN_FACTOR}x the K = {k_shot} this model was meta-trained "
                "with: adaptation is slower and its learning rates were not tuned for so many")
    return None


def available_memory() -> int | None:
    """Bytes of memory available now (psutil, else /proc/meminfo, else sysconf), or None if unknown."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_sample_memory(n: int, select: float, shape: tuple[int, ...], z_dim: int, bytes_per_image: int = 4,
                        available: int | None = None) -> int:
    """Refuse (ConfigError) a request for n samples whose output and latents would take more than half the memory
    available now; return the estimate in bytes. bytes_per_image: per value of each kept image (4: float32; a
    caller that also keeps a uint8 copy passes 5). One batch's working memory (SAMPLE_BATCH images) is not counted.
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    m = max(n, round(select * n))
    need = n * math.prod(shape) * bytes_per_image + m * (z_dim + 1) * 4  # images, latents and scores
    available = available_memory() if available is None else available
    if available is not None and need > available // 2:
        most = max(0, int(n * (available // 2) / need))
        raise ConfigError(f"{n} samples{f' (of {m} candidates)' if m > n else ''} of {'x'.join(map(str, shape))} "
                          f"would take about {need / 2**30:.1f} GiB, more than half of the {available / 2**30:.1f} "
                          f"GiB of memory available now; ask for at most about {most} at a time (different seeds "
                          "give different samples)")
    return need


@dataclass
class AdaptedGenerator:
    system: System
    params_g: Params
    params_d: Params
    support: Tensor  # (K, C, H, W): the context of conditional models

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, select: float = 1.0,
               batch: int = SAMPLE_BATCH) -> Tensor:
        """n samples of the adapted class: (n, C, H, W) in [-1, 1].

        select > 1: draw round(select x n) candidates and keep the n that the adapted discriminator rates most
        real (each beside its reference, as D judges), in the order they were drawn; 1 = every draw is kept.

        Images are generated (and candidates scored) `batch` at a time; all latents are drawn first, so the
        draws do not depend on `batch`, and a request of at most `batch` images (or candidates) runs as one
        call. Larger ones give the same images up to the float rounding of batch-size dependent kernels.
        Raises ConfigError when the output would not fit in half the memory available (check_sample_memory)."""
        check_select(select)
        prob, ref = self.system.problem, next(iter(self.params_g.values()))
        check_sample_memory(n, select, self.system.shape, prob.z_dim)
        support = self.support.to(ref.device, ref.dtype)
        m = max(n, round(select * n))
        z = torch.randn(m, prob.z_dim, generator=generator, dtype=ref.dtype)  # (m, z_dim), on the CPU generator
        if m <= batch:  # one call: exactly the unbatched computation
            x = prob.generate(self.params_g, z.to(ref.device), support)
            if m == n:
                return x
            score = prob.discriminate(self.params_d, x, prob.refs(support, m))
            return x[score.topk(n).indices.sort().values]
        if m == n:
            out = torch.empty(n, *self.system.shape, dtype=ref.dtype, device=ref.device)
            for s in range(0, n, batch):
                out[s:s + batch] = self._generate(z[s:s + batch], s)
            return out
        return self._select(z, n, batch)

    def _generate(self, z: Tensor, start: int) -> Tensor:
        """Images for latents z (B, z_dim) that are draws start..start+B-1: paired models pair draw i with
        support image i mod K, so the context is rotated to begin at start mod K."""
        prob, ref = self.system.problem, next(iter(self.params_g.values()))
        support = self.support.to(ref.device, ref.dtype)
        context = support.roll(-start, 0) if prob.paired else support
        return prob.generate(self.params_g, z.to(ref.device), context)

    def _select(self, z: Tensor, n: int, batch: int) -> Tensor:
        """The n of the candidates z (m, z_dim) that D rates most real, in draw order, keeping n + batch images."""
        prob, ref = self.system.problem, next(iter(self.params_g.values()))
        support = self.support.to(ref.device, ref.dtype)
        keep = torch.empty(n, *self.system.shape, dtype=ref.dtype, device=ref.device)
        score = torch.empty(n, dtype=ref.dtype, device=ref.device)
        index = torch.empty(n, dtype=torch.long, device=ref.device)
        filled = 0
        for s in range(0, z.shape[0], batch):
            x = self._generate(z[s:s + batch], s)
            sc = prob.discriminate(self.params_d, x, prob.refs(support, x.shape[0], s))
            idx = torch.arange(s, s + x.shape[0], device=ref.device)
            take = min(n - filled, x.shape[0])  # fill the kept set first
            keep[filled:filled + take], score[filled:filled + take] = x[:take], sc[:take]
            index[filled:filled + take] = idx[:take]
            filled += take
            x, sc, idx = x[take:], sc[take:], idx[take:]
            if x.shape[0]:  # then each new candidate in the top n replaces one that dropped out
                chosen = torch.zeros(n + x.shape[0], dtype=torch.bool, device=ref.device)
                chosen[torch.cat([score, sc]).topk(n).indices] = True
                out, new = (~chosen[:n]).nonzero()[:, 0], chosen[n:].nonzero()[:, 0]
                keep[out], score[out], index[out] = x[new], sc[new], idx[new]
        return keep[index.argsort()]


StepFn = Callable[[Params, Params, dict, dict, Tensor, dict], tuple[Params, Params]]


def one_step(problem: GanProblem, n_d: int, n_g: int, pg: Params, pd: Params, lr_g: dict, lr_d: dict,
             support: Tensor, noise: dict[str, Tensor]) -> tuple[Params, Params]:
    """One step of the inner loop (n_d discriminator, then n_g generator updates); noise holds that step's slices
    (leading dim 1) of z_d, eps_d and z_g."""
    pg, pd, _ = problem.inner_loop(pg, pd, lr_g, lr_d, support, noise, InnerSchedule(1, n_d, n_g), first_order=True)
    return pg, pd


def compiled_step(system: System, backend: str = "inductor") -> StepFn:
    """one_step under torch.compile, for a process that adapts many times (a server): the first call with a new
    support size compiles (tens of seconds to minutes on a CPU), later ones run the generated code. The same
    arithmetic as the eager loop up to float rounding of fused kernels (tests/test_adapt_fast.py)."""
    m = system.cfg.meta
    return torch.compile(functools.partial(one_step, system.problem, m.n_d, m.n_g), backend=backend)


def adapt_params(system: System, meta: Meta, support: Tensor, steps: int, generator: torch.Generator,
                 use_ema: Params | None = None, step_fn: StepFn | None = None) -> tuple[Params, Params]:
    """Run the meta-learner's inner loop on `support` (K, ...) for `steps` steps (no outer graph). step_fn: run it
    one step at a time through this function (compiled_step) instead of the inner loop itself."""
    if support.ndim != len(system.shape) + 1 or tuple(support.shape[1:]) != system.shape:
        raise DataError(f"support images have shape {tuple(support.shape[1:])}, the model expects "
                        f"{system.shape}; read them with read_support() or resize them")
    if support.shape[0] < 1:
        raise DataError("adaptation needs at least one support example (K >= 1)")
    m = system.cfg.meta
    sched = InnerSchedule(steps, m.n_d, m.n_g)
    ref = next(iter(meta["g"].values()))
    dtype, device = ref.dtype, ref.device
    k = support.shape[0]
    noise = sample_noise(1, sched, k, 0, system.problem.z_dim, generator, dtype)  # drawn on the CPU generator
    noise = {key: v[0].to(device) for key, v in noise.items()}
    lr_g, lr_d = system.learner.rates(meta)
    pg0 = use_ema if use_ema is not None else meta["g"]
    pg, pd, lr_g, lr_d, support = detach(pg0), detach(meta["d"]), detach(lr_g), detach(lr_d), support.to(device, dtype)
    if step_fn is None:
        pg, pd, _ = system.problem.inner_loop(pg, pd, lr_g, lr_d, support, noise, sched, first_order=True)
    else:
        for t in range(steps):
            pg, pd = step_fn(pg, pd, rate_at(lr_g, t), rate_at(lr_d, t), support, {key: noise[key][t:t + 1] for key in ("z_d", "eps_d", "z_g")})
    return detach(pg), detach(pd)


@dataclass
class MetaGAN:
    """A meta-trained GAN: config, assembled parts, meta-parameters and the EMA generator."""

    system: System
    meta: Meta
    ema: dict
    step: int = 0
    step_fn: StepFn | None = field(default=None, repr=False)  # compile(): adapt through compiled_step

    def compile(self) -> MetaGAN:
        """Adapt through a torch.compile'd inner step from now on (compiled_step): worth it in a process that adapts
        many times, such as a server; the first adaptation pays the compilation, and a new support size can compile
        again. Samples equal the eager path's to float rounding (docs/performance.md: 1.5-1.6x faster on a CPU)."""
        self.step_fn = compiled_step(self.system)
        return self

    @property
    def cfg(self) -> Config:
        return self.system.cfg

    @property
    def own_steps(self) -> int:
        """The adaptation steps the model was made for: train.adapt_steps, else its meta-trained inner steps."""
        return self.cfg.train.adapt_steps or self.cfg.meta.inner_steps

    @property
    def offered_steps(self) -> int:
        """The adaptation steps to offer a user (the web page's start, what `metagan adapt` suggests): own_steps, or 0
        for a jointly trained model, which has no meta-learned adaptation (fine-tuning one on a few images lowered
        its samples' quality on Omniglot)."""
        return 0 if self.cfg.meta.learner == "joint" else self.own_steps

    def adapt(self, support: Tensor, steps: int | None = None, generator: torch.Generator | None = None,
              use_ema: bool = True, keep_generator: bool = False) -> AdaptedGenerator:
        """Run the inner loop on `support` for `steps` steps. keep_generator: adapt as usual, then sample from the
        generator the adaptation started from, with the adapted discriminator (for `sample(select=R)`: the
        fine-tuned discriminator chooses among the pre-trained generator's samples)."""
        if steps is None:  # 0 is honoured: the meta-learned (EMA) generator itself, no adaptation
            steps = self.own_steps
        if steps < 0:
            raise ConfigError(f"adaptation steps must be >= 0, got {steps}")
        if support.ndim:
            check_support_size(support.shape[0], self.cfg.task.k_shot)  # the hard cap; the CLI prints the warning
        generator = generator or torch.Generator().manual_seed(0)
        ema_g = self.ema.get("g") if use_ema and self.ema else None
        pg, pd = adapt_params(self.system, self.meta, support, steps, generator, ema_g, self.step_fn)
        if keep_generator:
            pg = detach(ema_g if ema_g is not None else self.meta["g"])
        return AdaptedGenerator(self.system, pg, pd, support)

    def read_support(self, paths: list[str | os.PathLike], polarity: str = "auto") -> Tensor:
        """Image files -> (K, C, H, W) model-space tensor, read as the training data were (series models: series
        files -> (K, C, L), metagan.data.series.read_support_series; polarity does not apply).

        polarity: "auto" reads them in the polarity of the model's training files and refuses images that look
        inverted; "dark-on-light" or "light-on-dark" says what the files hold (they are converted to the model's
        ink-bright space either way) and skips that check. Raises DataError for K > MAX_SUPPORT and for images
        that cannot be a drawing (metagan.data.images.read_support_image)."""
        if polarity not in POLARITIES:
            raise ConfigError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
        d = self.cfg.data
        if is_series(d):  # .csv/.npy/.npz series files -> (K, C, L), resampled and normalised as in training
            from .data.series import read_support_series

            check_support_size(len(paths), self.cfg.task.k_shot)
            return read_support_series(paths, d)
        check_support_size(len(paths), self.cfg.task.k_shot)
        invert = files_inverted(d) if polarity == "auto" else polarity == "dark-on-light"
        imgs = [read_support_image(p, d.image_size, d.channels, invert, polarity == "auto") for p in paths]
        return to_model_space(torch.stack(imgs))


def load(path: str | os.PathLike) -> MetaGAN:
    """Load a run folder or checkpoint file (tensors and JSON only; no code runs from the file)."""
    ck = ckpt.load(path)
    system = build_system(ck.config)
    ckpt.check_compatible(ck.meta, init_meta(system, 0), str(path))
    return MetaGAN(system, ck.meta, ck.ema, ck.step)


def adapt(checkpoint: str | os.PathLike | MetaGAN, support, steps: int | None = None, seed: int = 0,
          use_ema: bool = True, keep_generator: bool = False) -> AdaptedGenerator:
    """One call: a checkpoint and support images (paths or a (K, C, H, W) tensor) -> adapted generator."""
    model = checkpoint if isinstance(checkpoint, MetaGAN) else load(checkpoint)
    if not isinstance(support, Tensor):
        support = model.read_support([Path(p) for p in support])
    return model.adapt(support, steps, torch.Generator().manual_seed(seed), use_ema, keep_generator)


__all__ = ["AdaptedGenerator", "MetaGAN", "adapt", "adapt_params", "available_memory", "check_sample_memory",
           "check_select", "check_support_size", "load"]
