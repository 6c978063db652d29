"""Parameters as plain data: nested dicts of tensors, and pure functions over them.

A model's parameters are `dict[str, Tensor]` (names as in `named_parameters`). The meta-parameters
of a GAN are a nested dict `{"g": {...}, "d": {...}}`, plus `{"lr_g": {...}, "lr_d": {...}}` for
Meta-SGD. `flatten`/`unflatten` convert to and from the flat `"g.fc.weight"` names that optimizers
and safetensors files use.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

Params = dict[str, Tensor]
Meta = dict[str, Params]


def params_of(module: nn.Module) -> Params:
    """Detached copies of a module's parameters (the module itself is never mutated later)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def sgd_update(params: Params, grads: Params, lr: Mapping[str, Tensor | float]) -> Params:
    """params - lr * grads, with a learning rate per parameter (a float, or a tensor that broadcasts to its
    shape: of its shape, or 0-dim)."""
    return {k: params[k] - lr[k] * grads[k] for k in params}


def inner_update(params: Params, grads: Params, lr, first_order: bool, record: list | None = None,
                 tag: tuple = ()) -> Params:
    """One inner SGD update of a player: params - lr * grads, the gradients detached when first_order. With
    first_order and a `record` list, (*tag, the detached gradients) is appended to it (first-order Meta-SGD
    reads its rate gradients from them; tag = (player, step))."""
    if first_order:
        grads = detach(grads)
        if record is not None:
            record.append((*tag, grads))
    return sgd_update(params, grads, lr)


def rate_at(lr, t: int):
    """The rates of inner step t: lr itself (one map for every step), or entry t of a per-step list of maps
    (Meta-SGD with meta.rates=step; steps beyond the list use its last map)."""
    return lr[min(t, len(lr) - 1)] if isinstance(lr, (list, tuple)) else lr


def constant_rates(params: Params, lr: float) -> dict[str, float]:
    return {k: lr for k in params}


def detach(tree):
    return tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, tree)


def flatten(meta: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    return {f"{group}.{name}": t for group, params in meta.items() for name, t in params.items()}


def unflatten(flat: Mapping[str, Tensor]) -> Meta:
    out: Meta = {}
    for key, t in flat.items():
        group, name = key.split(".", 1)
        out.setdefault(group, {})[name] = t
    return out


def index(tree, i: int):
    """The i-th task of a batched pytree (leading dimension)."""
    return tree_map(lambda t: t[i], tree)


def global_norm(params: Params) -> Tensor:
    return torch.sqrt(sum(g.pow(2).sum() for g in params.values()))


def all_finite(tree) -> bool:
    leaves = []
    tree_map(lambda t: leaves.append(bool(torch.isfinite(t).all())) if isinstance(t, Tensor) else None, tree)
    return all(leaves)
