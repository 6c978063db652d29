"""Networks over item vectors (CFGAN-style generator and discriminator) and MeLU's preference estimator.

A user's condition is their support set, rows (S, 4) of (user, item, label, present) (tasks.sparse_batch): the
item vector of their labels, stored sparsely. Item vectors are read through per-item weights scaled by
1/sqrt(#rated), so a user with 3 ratings and one with 90 reach the first layer at the same scale (as SVD++
normalises implicit feedback).

CFGAN (Chae et al., CIKM 2018): G(z, c_u) is a whole vector of predicted labels, one per item; D judges a vector
only at the items a real vector has (partial masking), beside the condition c_u. Here G decodes (c_u, z) through an
MLP; the output layer's row of an item is that item's learned profile, which adaptation can move per user.
MeLU (Lee et al., KDD 2019): embeddings of user and item features, then decision layers that MAML adapts per user.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(mask: Tensor) -> Tensor:
    """1/sqrt(#rated) of a mask (..., S) -> (..., 1), for an empty mask 1."""
    return mask.sum(-1, keepdim=True).clamp(min=1.0).rsqrt()


class ItemReader(nn.Module):
    """A user's item vector, read sparsely: rows (S, 3) of (item, centred label, present) -> (hidden,) =
    sum of the items' mask and label weights, scaled by 1/sqrt(#present). The same as a linear layer over the dense
    (2, n_items) vector of mask and centred label, at the cost of S rows instead of n_items."""

    def __init__(self, n_items: int, hidden: int, bias: bool = True):
        super().__init__()
        self.w_seen = nn.Parameter(torch.randn(n_items, hidden) / math.sqrt(n_items))
        self.w_label = nn.Parameter(torch.randn(n_items, hidden) / math.sqrt(n_items))
        self.bias = nn.Parameter(torch.zeros(hidden)) if bias else None

    def forward(self, items: Tensor, labels: Tensor, present: Tensor) -> Tensor:
        # items (..., S) long, labels, present (..., S) -> (..., hidden)
        w = self.w_seen[items] + labels[..., None] * self.w_label[items]  # (..., S, hidden)
        h = (present[..., None] * w).sum(-2) * _norm(present)
        return h if self.bias is None else h + self.bias


class ItemGenerator(nn.Module):
    """z (B, z_dim), the condition rows (S, 4) of (user, item, label, present), items `at` (L,) -> (B, L) predicted
    labels in (0, 1): the generated item vector at those items (at = all items: the whole vector)."""

    def __init__(self, n_items: int, z_dim: int, hidden: int):
        super().__init__()
        self.z_dim = z_dim
        self.encode = ItemReader(n_items, hidden)
        self.mix = nn.Linear(hidden + z_dim, hidden)
        self.out_w = nn.Parameter(0.1 * torch.randn(n_items, hidden) / math.sqrt(hidden))  # G starts near its biases
        self.out_b = nn.Parameter(torch.zeros(n_items))

    def forward(self, z: Tensor, cond: Tensor, at: Tensor) -> Tensor:
        h = F.leaky_relu(self.encode(cond[:, 1].long(), cond[:, 2] - 0.5, cond[:, 3]), 0.2)
        h = F.leaky_relu(self.mix(torch.cat([h.expand(z.shape[0], -1), z], 1)), 0.2)  # (B, hidden)
        return torch.sigmoid(h @ self.out_w[at].T + self.out_b[at])


class ItemDiscriminator(nn.Module):
    """x (B, L) labels of the items `at` (L,) with present (L,), judged beside the condition rows (S, 4) ->
    (B,) logits; features=True: the last hidden layer (B, hidden). Only the present items are read (CFGAN's
    partial masking)."""

    def __init__(self, n_items: int, hidden: int):
        super().__init__()
        self.read_x = ItemReader(n_items, hidden)
        self.read_c = ItemReader(n_items, hidden, bias=False)
        self.mid = nn.Linear(hidden, hidden)
        self.logit = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, at: Tensor, present: Tensor, cond: Tensor, features: bool = False) -> Tensor:
        hx = self.read_x(at.expand_as(x), x - 0.5, present.expand_as(x))  # (B, hidden)
        hc = self.read_c(cond[:, 1].long(), cond[:, 2] - 0.5, cond[:, 3])
        h = F.leaky_relu(hx + hc, 0.2)
        h = F.leaky_relu(self.mid(h), 0.2)
        return h if features else self.logit(h).squeeze(-1)


class MeluNet(nn.Module):
    """MeLU's estimator: users (N,), items (N,) indices -> (N,) logits of the label.

    Embeddings (the global part, never adapted per user): item id, release decade, genres (a linear map of the
    multi-hot vector), and the user's age group, gender and occupation. Decision layers fc1, fc2, out (the part
    MAML adapts). Side features are buffers; data without them leave those embeddings at index 0."""

    DECISION = ("fc1.", "fc2.", "out.")

    def __init__(self, n_items: int, item_genres: Tensor, item_year: Tensor, user_feats: Tensor,
                 embed: int = 16, hidden: int = 64):
        super().__init__()
        n_users = max(1, user_feats.shape[0])
        self.register_buffer("genres", item_genres if item_genres.numel() else torch.zeros(n_items, 1))
        self.register_buffer("year", item_year if item_year.numel() else torch.zeros(n_items, dtype=torch.long))
        self.register_buffer("ufeat", user_feats if user_feats.numel() else torch.zeros(n_users, 3, dtype=torch.long))
        self.item = nn.Embedding(n_items, embed)
        self.year_emb = nn.Embedding(int(self.year.max()) + 1, embed)
        self.genre_emb = nn.Linear(self.genres.shape[1], embed, bias=False)
        self.user_embs = nn.ModuleList(nn.Embedding(int(self.ufeat[:, j].max()) + 1, embed) for j in range(3))
        self.fc1 = nn.Linear(6 * embed, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        g = self.genres[items]
        feats = [self.item(items), self.year_emb(self.year[items]),
                 self.genre_emb(g) / g.sum(-1, keepdim=True).clamp(min=1.0)]
        u = self.ufeat[users.clamp(max=self.ufeat.shape[0] - 1)]
        feats += [emb(u[:, j]) for j, emb in enumerate(self.user_embs)]
        h = F.relu(self.fc1(torch.cat(feats, -1)))
        h = F.relu(self.fc2(h))
        return self.out(h).squeeze(-1)
