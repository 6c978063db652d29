"""The reply generator and the (prompt, reply) discriminator, in plain tensor ops (functional_call and vmap run
them; no module state changes inside a forward).

ReplyGenerator: a byte-level encoder-decoder. The prompt (B, Lp) is embedded, convolved (width 3) and mean-pooled
over its bytes into c (B, H); the GRU decoder starts from tanh(W [c; z]) (the latent z enters here) and reads c
beside every input byte. Two ways to run it:
    teacher forcing  logits(z, prompt, reply) -> (B, Lr, V): the next-byte logits of a real reply (likelihoods)
    sampling         sample(z, prompt, ...)   -> (B, Lr, V): one-hot replies drawn byte by byte, each byte fed back
A sampled byte is the argmax of logits / temperature + Gumbel noise (an exact draw from the softmax); in the
straight-through relaxation (Jang et al. 2017) the forward value is that one-hot and the backward pass takes the
gradient of softmax((logits / temperature + g) / tau), so a discriminator's gradient reaches the generator
through the discrete reply. Bytes after the first EOS become PAD, as in real replies.

The Gumbel noise is part of z: a z row holds the latent (z_dim) and, for sampling, Lr x V standard normals that
become Gumbel(0, 1) draws through the normal CDF (u = Phi(x), g = -log(-log u)). So all of a task's randomness
lives in the noise dict the meta-learners pass around, and vmap over tasks equals the per-task loop.

Retrieve and edit (`copy=True`, a pointer-generator after See et al. 2017, its memory the topic's support
exchanges as in Weston et al. 2018's retrieve-and-refine): the decoder also reads a memory of support exchanges
(prompts (M, Lp), replies (M, Lr)) and a mask of the slots each row may read (a row never reads its own exchange).
At every step it attends over the support replies' bytes (keys: a width-3 convolution of their embeddings, so a
key knows its neighbours) with three scores added: the state's match with the key, the match of the row's prompt
code with the slot's prompt code (the support exchange whose prompt is like this one), and a learned bonus for the
position after the one attended at the previous step (copying a run of bytes). The next-byte distribution mixes
the vocabulary softmax and the attention's bytes through a learned gate; a null slot, always readable, takes the
attention where no support fits (and when the mask leaves none). The attention's context enters the next input.
So a reply can take bytes, or runs of them, from the support replies of its topic and change the rest.

PairDiscriminator: judges (prompt, reply) pairs; a reply is (B, Lr, V) one-hot or relaxed one-hot, embedded by a
matrix product, so real replies (exact one-hot) and generated ones go through the same path.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .tokens import BOS, EOS, PAD, VOCAB


def one_hot(tokens: Tensor, vocab: int = VOCAB, dtype=torch.float32) -> Tensor:
    """(..., L) int64 -> (..., L, vocab) float (by comparison, which vmap batches)."""
    return (tokens[..., None] == torch.arange(vocab, device=tokens.device)).to(dtype)


def gumbel_from_normal(x: Tensor) -> Tensor:
    """Standard normals -> Gumbel(0, 1) draws through the normal CDF (clamped away from 0 and 1)."""
    u = (0.5 * (1 + torch.erf(x / math.sqrt(2.0)))).clamp(1e-7, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def _conv_pool(x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x (B, L, E), mask (B, L) -> (B, H): relu(conv1d width 3) mean-pooled over the unmasked positions."""
    h = F.relu(F.conv1d(x.transpose(1, 2), weight, bias, padding=1)).transpose(1, 2)  # (B, L, H)
    return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)


class ReplyGenerator(nn.Module):
    def __init__(self, embed: int, hidden: int, z_dim: int, reply_len: int, vocab: int = VOCAB,
                 eos_grad: bool = True, copy: bool = False):
        super().__init__()
        self.z_dim, self.reply_len, self.vocab, self.eos_grad, self.copy = z_dim, reply_len, vocab, eos_grad, copy
        h, e = hidden, embed
        self.emb = nn.Parameter(torch.randn(vocab, e) * 0.3)
        self.enc_w = nn.Parameter(torch.randn(h, e, 3) / math.sqrt(3 * e))
        self.enc_b = nn.Parameter(torch.zeros(h))
        self.init_w = nn.Parameter(torch.randn(h, h + z_dim) / math.sqrt(h + z_dim))
        self.init_b = nn.Parameter(torch.zeros(h))
        self.w_ih = nn.Parameter(torch.randn(3 * h, e + h) / math.sqrt(e + h))
        self.w_hh = nn.Parameter(torch.randn(3 * h, h) / math.sqrt(h))
        self.b_ih = nn.Parameter(torch.zeros(3 * h))
        self.b_hh = nn.Parameter(torch.zeros(3 * h))
        self.out_w = nn.Parameter(torch.randn(vocab, h) / math.sqrt(h))
        self.out_b = nn.Parameter(torch.zeros(vocab))
        if copy:
            self.mem_w = nn.Parameter(torch.randn(h, e, 3) / math.sqrt(3 * e))
            self.mem_b = nn.Parameter(torch.zeros(h))
            self.att_q = nn.Parameter(torch.randn(h, h) / math.sqrt(h))
            self.att_p = nn.Parameter(torch.randn(h, h) / math.sqrt(h))
            self.att_shift = nn.Parameter(torch.tensor(2.0))
            self.att_null = nn.Parameter(torch.zeros(()))
            self.gate_w = nn.Parameter(torch.zeros(2 * h))
            self.gate_b = nn.Parameter(torch.zeros(()))
            self.ctx_in = nn.Parameter(torch.randn(3 * h, h) / math.sqrt(h))

    def noise_dim(self, sampling: bool) -> int:
        """Width of a z row: the latent, and with sampling the Gumbel noise of every reply byte."""
        return self.z_dim + (self.reply_len * self.vocab if sampling else 0)

    def start(self, z: Tensor, prompt: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, >= z_dim), prompt (B, Lp) -> initial state h0 (B, H), prompt code c (B, H)."""
        c = _conv_pool(self.emb[prompt], (prompt != PAD).to(self.emb.dtype), self.enc_w, self.enc_b)
        h0 = torch.tanh(torch.cat([c, z[:, :self.z_dim]], -1) @ self.init_w.T + self.init_b)
        return h0, c

    def read_memory(self, c: Tensor, memory: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        """The memory's keys and masks for rows with prompt codes c (B, H). memory: support prompts (M, Lp),
        support replies (M, Lr) int64 and allowed (B, M) bool (the slots each row may read)."""
        mp, mr, allowed = memory
        dt = self.emb.dtype
        x = self.emb[mr]  # (M, L, E)
        keys = F.relu(F.conv1d(x.transpose(1, 2), self.mem_w, self.mem_b, padding=1)).transpose(1, 2)  # (M, L, H)
        cm = _conv_pool(self.emb[mp], (mp != PAD).to(dt), self.enc_w, self.enc_b)  # (M, H)
        hid = keys.shape[-1]
        slot = (c @ self.att_p) @ cm.T / math.sqrt(hid)  # (B, M): this prompt against each support prompt
        valid = allowed[:, :, None] & (mr != PAD)[None]  # (B, M, L)
        m, lr = mr.shape
        return {"keys": keys, "flat": keys.reshape(m * lr, hid), "bytes": one_hot(mr.reshape(-1), self.vocab, dt),
                "bias": torch.where(valid, slot[:, :, None], torch.full_like(slot[:, :, None], -1e9))}

    def copy_step(self, h: Tensor, prev: Tensor, mem: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """One retrieve-and-edit step: state h (B, H), last step's attention prev (B, M, L) -> next-byte log
        probabilities (B, V), this step's attention (B, M, L), its context (B, H)."""
        hid = h.shape[-1]
        b, m, lr = prev.shape
        after = torch.cat([torch.zeros_like(prev[..., :1]), prev[..., :-1]], -1)  # the position after last step's
        scores = torch.einsum("bh,mlh->bml", h @ self.att_q, mem["keys"]) / math.sqrt(hid) + mem["bias"] \
            + self.att_shift * after
        full = torch.softmax(torch.cat([scores.reshape(b, m * lr), self.att_null.expand(b, 1)], -1), -1)
        attn, null = full[:, :-1], full[:, -1:]
        ctx = attn @ mem["flat"]
        gate = torch.sigmoid(torch.cat([h, ctx], -1) @ self.gate_w + self.gate_b)[:, None]
        pv = torch.softmax(h @ self.out_w.T + self.out_b, -1)
        p = (gate + (1 - gate) * null) * pv + (1 - gate) * (attn @ mem["bytes"])
        return torch.log(p.clamp(min=1e-12)), attn.reshape(b, m, lr), ctx

    def cell(self, gi: Tensor, h: Tensor) -> Tensor:
        """One GRU step: input projection gi (B, 3H) (of the byte embedding and the prompt code), state h (B, H)
        -> new state (B, H)."""
        gh = h @ self.w_hh.T + self.b_hh
        hid = h.shape[-1]
        ru = torch.sigmoid(gi[..., :2 * hid] + gh[..., :2 * hid])
        n = torch.tanh(gi[..., 2 * hid:] + ru[..., :hid] * gh[..., 2 * hid:])
        u = ru[..., hid:]
        return n + u * (h - n)

    def project(self, x: Tensor, c: Tensor) -> Tensor:
        """Input projection of byte embeddings x (B, [L,] E) beside the prompt code c (B, H) -> (B, [L,] 3H)."""
        e = x.shape[-1]
        pc = c @ self.w_ih[:, e:].T + self.b_ih
        return x @ self.w_ih[:, :e].T + (pc[:, None] if x.dim() == 3 else pc)

    def logits(self, z: Tensor, prompt: Tensor, reply: Tensor, memory=None) -> Tensor:
        """Teacher forcing: z (B, >= z_dim), prompt (B, Lp), reply (B, Lr) int64 -> next-byte logits (B, Lr, V);
        step t reads reply byte t - 1 (BOS at t = 0). With copy, memory (support prompts, support replies,
        allowed slots: read_memory's argument) is required and the logits are log probabilities."""
        h, c = self.start(z, prompt)
        inputs = torch.cat([torch.full_like(reply[:, :1], BOS), reply[:, :-1]], 1)
        gi = self.project(self.emb[inputs], c)  # (B, Lr, 3H), every step's input at once
        out = []
        if self.copy:
            mem = self.read_memory(c, self._memory(memory))
            prev = torch.zeros_like(mem["bias"])
            ctx = torch.zeros_like(h)
            for t in range(reply.shape[1]):
                h = self.cell(gi[:, t] + ctx @ self.ctx_in.T, h)
                logp, prev, ctx = self.copy_step(h, prev, mem)
                out.append(logp)
            return torch.stack(out, 1)
        for t in range(reply.shape[1]):
            h = self.cell(gi[:, t], h)
            out.append(h)
        return torch.stack(out, 1) @ self.out_w.T + self.out_b

    def _memory(self, memory):
        if memory is None:
            raise ValueError("this reply generator retrieves and edits (model.copy): give it the support exchanges "
                             "as its memory")
        return memory

    def sample(self, z: Tensor, prompt: Tensor, tau: float = 1.0, temperature: float = 1.0, memory=None) -> Tensor:
        """Sampling: z (B, noise_dim(True)), prompt (B, Lp) -> replies (B, Lr, V), straight-through one-hot
        (forward: exact one-hot; backward: the Gumbel-softmax relaxation at tau); PAD after the first EOS."""
        b, lr, v = z.shape[0], self.reply_len, self.vocab
        g = gumbel_from_normal(z[:, self.z_dim:].reshape(b, lr, v))
        h, c = self.start(z, prompt)
        e = self.emb.shape[1]
        table = self.emb @ self.w_ih[:, :e].T  # (V, 3H): each byte's input projection
        pc = c @ self.w_ih[:, e:].T + self.b_ih
        x = table[torch.full_like(prompt[:, 0], BOS)]
        ys = []
        if self.copy:
            mem = self.read_memory(c, self._memory(memory))
            prev = torch.zeros_like(mem["bias"])
            ctx = torch.zeros_like(h)
        for t in range(lr):
            if self.copy:
                h = self.cell(x + pc + ctx @ self.ctx_in.T, h)
                logp, prev, ctx = self.copy_step(h, prev, mem)
                scores = logp / temperature + g[:, t]
            else:
                h = self.cell(x + pc, h)
                scores = (h @ self.out_w.T + self.out_b) / temperature + g[:, t]
            soft = torch.softmax(scores / tau, -1)
            hard = (scores == scores.max(-1, keepdim=True).values).to(soft.dtype)
            y = hard - soft.detach() + soft
            ys.append(y)
            x = y @ table
        y = torch.stack(ys, 1)  # (B, Lr, V)
        # 1 while no EOS has been emitted, up to and including t; without eos_grad the cut carries no gradient, so a
        # discriminator cannot teach G to shorten its replies (to delete the bytes it judges fake)
        ended = torch.cumprod(1 - (y if self.eos_grad else y.detach())[..., EOS], 1)
        alive = torch.cat([torch.ones_like(ended[:, :1]), ended[:, :-1]], 1)[..., None]
        return alive * y + (1 - alive) * one_hot(torch.full_like(prompt[:, :1], PAD), v, y.dtype)

    def forward(self, z: Tensor, prompt: Tensor, reply: Tensor | None = None, tau: float = 1.0,
                temperature: float = 1.0, memory=None) -> Tensor:
        """logits(z, prompt, reply, memory) with a reply, else sample(z, prompt, tau, temperature, memory)."""
        if reply is not None:
            return self.logits(z, prompt, reply, memory)
        return self.sample(z, prompt, tau, temperature, memory)


class PairDiscriminator(nn.Module):
    def __init__(self, embed: int, hidden: int, vocab: int = VOCAB):
        super().__init__()
        h, e = hidden, embed
        self.emb_p = nn.Parameter(torch.randn(vocab, e) * 0.3)
        self.emb_r = nn.Parameter(torch.randn(vocab, e) * 0.3)
        self.conv_p = nn.Parameter(torch.randn(h, e, 3) / math.sqrt(3 * e))
        self.conv_pb = nn.Parameter(torch.zeros(h))
        self.conv_r = nn.Parameter(torch.randn(h, e, 3) / math.sqrt(3 * e))
        self.conv_rb = nn.Parameter(torch.zeros(h))
        self.fc = nn.Parameter(torch.randn(h, 3 * h) / math.sqrt(3 * h))
        self.fc_b = nn.Parameter(torch.zeros(h))
        self.out = nn.Parameter(torch.randn(h) / math.sqrt(h))
        self.out_b = nn.Parameter(torch.zeros(()))

    def forward(self, prompt: Tensor, reply: Tensor) -> Tensor:
        """prompt (B, Lp) int64, reply (B, Lr, V) (relaxed) one-hot -> logits (B,)."""
        cp = _conv_pool(self.emb_p[prompt], (prompt != PAD).to(reply.dtype), self.conv_p, self.conv_pb)
        cr = _conv_pool(reply @ self.emb_r, 1 - reply[..., PAD], self.conv_r, self.conv_rb)
        h = F.relu(torch.cat([cp, cr, cp * cr], -1) @ self.fc.T + self.fc_b)
        return h @ self.out + self.out_b
