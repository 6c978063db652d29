"""Text as fixed-length byte sequences: the tokenizer of the dialogue domain.

A symbol is one UTF-8 byte (0-255) or one of three specials, so every script of the corpus (Latin, Cyrillic,
Devanagari, Bengali, Hebrew, Arabic script, Thai, CJK, Hangul, ...) is covered with no unknown symbol and no
vocabulary to fit: a held-out topic in any language is encoded exactly as a training one. The price is length
(2-3 bytes per character outside Latin scripts), which the fixed maximum lengths below bound.

    >>> p = encode_prompt("Hi!", 8)    # tensor([72, 105, 33, 256, 256, 256, 256, 256])
    >>> r = encode_reply("Hey", 6)     # tensor([72, 101, 121, 258, 256, 256])   (the reply ends with EOS)
    >>> decode(r)                      # "Hey"

Prompts (Lp,) are bytes then PAD; replies (Lr,) are bytes, EOS, then PAD; text longer than fits is cut (a cut
inside a multi-byte character is dropped when decoding). `pair` packs both into one row (Lp + Lr,), the form in
which exchanges travel through tasks, the meta-learners and vmap.
"""
from __future__ import annotations

import torch
from torch import Tensor

PAD, BOS, EOS = 256, 257, 258
VOCAB = 259


def _bytes(text: str, n: int) -> list[int]:
    return list(text.strip().encode("utf-8"))[:n]


def encode_prompt(text: str, length: int) -> Tensor:
    """(length,) int64: the prompt's first `length` bytes, then PAD."""
    b = _bytes(text, length)
    return torch.tensor(b + [PAD] * (length - len(b)), dtype=torch.long)


def encode_reply(text: str, length: int) -> Tensor:
    """(length,) int64: the reply's first length - 1 bytes, EOS, then PAD."""
    b = _bytes(text, length - 1) + [EOS]
    return torch.tensor(b + [PAD] * (length - len(b)), dtype=torch.long)


def pair(prompt: str, reply: str, lp: int, lr: int) -> Tensor:
    """(lp + lr,) int64: one exchange as one row."""
    return torch.cat([encode_prompt(prompt, lp), encode_reply(reply, lr)])


def split(rows: Tensor, lp: int) -> tuple[Tensor, Tensor]:
    """rows (..., lp + lr) -> prompts (..., lp), replies (..., lr)."""
    return rows[..., :lp], rows[..., lp:]


def decode(tokens) -> str:
    """Bytes up to the first EOS (PAD and BOS skipped) as text; a cut multi-byte character is dropped."""
    out = bytearray()
    for t in (tokens.tolist() if isinstance(tokens, Tensor) else tokens):
        if t == EOS:
            break
        if t < 256:
            out.append(t)
    return out.decode("utf-8", errors="ignore").strip()
