"""A few exchanges of a new topic in, replies to new prompts out: adapt a meta-trained dialogue model to a topic.

    >>> bot = Replier.load("runs/00000-dialogue-gan-fomaml")
    >>> support = bot.read_support("my_topic.yml")               # chatterbot YAML or JSON lines of prompt/reply
    >>> adapted = bot.adapt(support)                               # its inner steps on the exchanges (< 1 s)
    >>> adapted.reply(["What do you like?"], seed=0)               # ["...", ...]
    $ metagan reply --checkpoint runs/00000-dialogue-gan-fomaml --conversations my_topic.yml --prompt "Hi"
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError
from ..functional import Meta, Params
from .data import read_conversations
from .tasks import encode
from .tokens import decode, encode_prompt
from .train import DialogueSystem, adapt, build_system, model_threads, read, reply_tokens

MAX_EXCHANGES = 1000  # a support set beyond this is not a few-shot topic


@dataclass
class AdaptedReplier:
    system: DialogueSystem
    pg: Params
    support: Tensor | None = None  # the exchanges adapted to (what a retrieve-and-edit generator reads)

    def reply(self, prompts: list[str], seed: int = 0, temperature: float | None = None) -> list[str]:
        """One sampled reply per prompt (the model's sampling temperature unless given)."""
        if not prompts:
            return []
        lp = self.system.cfg.data.prompt_len
        x = torch.stack([encode_prompt(p, lp) for p in prompts])
        with model_threads(self.system.cfg):
            toks = reply_tokens(self.system, self.pg, x, torch.Generator().manual_seed(seed), temperature,
                                self.support)
        return [decode(t) for t in toks]


@dataclass
class Replier:
    system: DialogueSystem
    meta: Meta

    @classmethod
    def load(cls, path: str | Path) -> "Replier":
        cfg, _, meta, _ = read(path)
        return cls(build_system(cfg), meta)

    @property
    def steps(self) -> int:
        cfg = self.system.cfg
        return cfg.train.adapt_steps or cfg.meta.inner_steps

    def read_support(self, path: str | Path) -> Tensor:
        """A conversation file or folder (data.read_conversations) -> support rows (K, Lp + Lr)."""
        exchanges = read_conversations(path).exchanges
        if len(exchanges) > MAX_EXCHANGES:
            raise DataError(f"{path} holds {len(exchanges)} exchanges; at most {MAX_EXCHANGES} are read for one "
                            "topic: give a few examples of the topic")
        d = self.system.cfg.data
        return encode(exchanges, d.prompt_len, d.reply_len)

    def adapt(self, support: Tensor, steps: int | None = None, seed: int = 0) -> AdaptedReplier:
        with model_threads(self.system.cfg):
            pg, _ = adapt(self.system, self.meta, support, self.steps if steps is None else steps,
                          torch.Generator().manual_seed(seed))
        return AdaptedReplier(self.system, pg, support)

    def latency(self, support: Tensor, reps: int = 20, steps: int | None = None) -> dict:
        """Milliseconds to adapt to the support rows (after one warm-up): median and 90th percentile of the wall
        time, and the median of this process's CPU time (what the wall time would be on an idle machine)."""
        self.adapt(support, steps)
        with model_threads(self.system.cfg) as threads:
            times, cpu = self._times(support, reps, steps)
        return {"kind": "reply-adapt-latency", "k": int(support.shape[0]),
                "steps": self.steps if steps is None else steps, "reps": reps, "threads": threads,
                "median_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(0.9 * (reps - 1))], 2),
                "cpu_median_ms": round(statistics.median(cpu), 2)}

    def _times(self, support: Tensor, reps: int, steps: int | None) -> tuple[list[float], list[float]]:
        """Wall and CPU milliseconds of `reps` adaptations, the wall times sorted."""
        times, cpu = [], []
        for r in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            self.adapt(support, steps, seed=r)
            times.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        times.sort()
        return times, cpu
