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
                 eos_grad: bool = True):
        super().__init__()
        self.z_dim, self.reply_len, self.vocab, self.eos_grad = z_dim, reply_len, vocab, eos_grad
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

    def noise_dim(self, sampling: bool) -> int:
        """Width of a z row: the latent, and with sampling the Gumbel noise of every reply byte."""
        return self.z_dim + (self.reply_len * self.vocab if sampling else 0)

    def start(self, z: Tensor, prompt: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, >= z_dim), prompt (B, Lp) -> initial state h0 (B, H), prompt code c (B, H)."""
        c = _conv_pool(self.emb[prompt], (prompt != PAD).to(self.emb.dtype), self.enc_w, self.enc_b)
        h0 = torch.tanh(torch.cat([c, z[:, :self.z_dim]], -1) @ self.init_w.T + self.init_b)
        return h0, c

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

    def logits(self, z: Tensor, prompt: Tensor, reply: Tensor) -> Tensor:
        """Teacher forcing: z (B, >= z_dim), prompt (B, Lp), reply (B, Lr) int64 -> next-byte logits (B, Lr, V);
        step t reads reply byte t - 1 (BOS at t = 0)."""
        h, c = self.start(z, prompt)
        inputs = torch.cat([torch.full_like(reply[:, :1], BOS), reply[:, :-1]], 1)
        gi = self.project(self.emb[inputs], c)  # (B, Lr, 3H), every step's input at once
        out = []
        for t in range(reply.shape[1]):
            h = self.cell(gi[:, t], h)
            out.append(h)
        return torch.stack(out, 1) @ self.out_w.T + self.out_b

    def sample(self, z: Tensor, prompt: Tensor, tau: float = 1.0, temperature: float = 1.0) -> Tensor:
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
        for t in range(lr):
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
                temperature: float = 1.0) -> Tensor:
        """logits(z, prompt, reply) with a reply, else sample(z, prompt, tau, temperature)."""
        if reply is not None:
            return self.logits(z, prompt, reply)
        return self.sample(z, prompt, tau, temperature)


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
