"""The series suite's networks: one small 1-D CNN (an FCN, Wang et al. 2017, shrunk) serves as the feature
network, the low-data classifier and the post-hoc classifiers of the discriminative and predictive scores.

    net = SeriesCNN(channels=1, n_classes=36)        # (N, C, L) -> (N, 36) logits; net.embed(x) -> (N, 32)

The feature network is that CNN trained as a classifier on the **training classes only** (never a held-out
class), its 32-d global-average-pooled features the space FD, PRDC, fidelity, diversity and copy ratio are
measured in. `feature_network` trains it once per benchmark folder (seconds) and keeps it there, with a record of
what it is and how well its features separate held-out classes (N-way K-shot prototype accuracy).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..data import ClassDataset
from ..metrics.features import few_shot_accuracy, sha256

WIDTH = 32  # channels of every block; the feature dimension
KERNELS = (7, 5, 3)  # one conv block per kernel, each halving the length
FEATURE_LR = 1e-3
EPISODES = 600  # prototype-accuracy episodes behind the feature network's record
BATCH = 64
FEATURE_UPDATES = 600  # Adam updates of the feature network (the benchmark's and rank's)


class SeriesCNN(nn.Module):
    """3 x [conv1d k, GroupNorm, ReLU, maxpool 2] + global average pool + linear: (N, C, L) -> (N, n_classes).
    `embed` gives the pooled features (N, width). Any L >= 8; no running statistics."""

    def __init__(self, channels: int, n_classes: int, width: int = WIDTH):
        super().__init__()
        blocks, cin = [], channels
        for k in KERNELS:
            blocks += [nn.Conv1d(cin, width, k, padding=k // 2), nn.GroupNorm(8, width), nn.ReLU(), nn.MaxPool1d(2)]
            cin = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width, n_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).mean(-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


class Embedding(nn.Module):
    """A SeriesCNN's features as a module: (N, C, L) -> (N, width), what evaluate.embed calls."""

    def __init__(self, net: SeriesCNN):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.embed(x)


def fit(net: nn.Module, x: Tensor, y: Tensor, updates: int, generator: torch.Generator, lr: float = FEATURE_LR,
        augment=None) -> nn.Module:
    """`updates` Adam steps of cross-entropy on batches of BATCH examples of x (N, C, L), labels y (N,), drawn as
    successive random permutations from `generator`; augment(x, generator) transforms each batch. Eval mode out."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    passes = -(-updates * BATCH // len(x))
    order = torch.cat([torch.randperm(len(x), generator=generator) for _ in range(passes)])
    net.train()
    for step in range(updates):
        idx = order[step * BATCH:(step + 1) * BATCH]
        xb = x[idx] if augment is None else augment(x[idx], generator)
        loss = F.cross_entropy(net(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def predict(net: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    """Predicted labels (N,) of x (N, C, L)."""
    return torch.cat([net(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def train_features(train: ClassDataset, updates: int, seed: int = 0) -> SeriesCNN:
    """A SeriesCNN classifier over the training classes (float series (n_i, C, L) in model space)."""
    x = torch.cat(train.images).float()
    y = torch.cat([torch.full((len(s),), i) for i, s in enumerate(train.images)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SeriesCNN(train.shape[0], train.num_classes)
    return fit(net, x, y, updates, torch.Generator().manual_seed(seed))


def training_features(train: ClassDataset, updates: int = FEATURE_UPDATES) -> Embedding:
    """The benchmark's feature network (the same seed and updates) as an embedding, trained on `train` in memory:
    what `metagan rank` measures series checkpoints in, on those same training classes (seconds)."""
    return Embedding(train_features(train, updates))


def feature_network(train: ClassDataset, heldout: ClassDataset, path: Path, updates: int,
                    log=print) -> tuple[nn.Module, dict]:
    """The feature network of a benchmark folder: loaded from `path` when a run there trained it, else trained on
    `train` (the training classes) and saved. Returns (embedding module, record for results.json)."""
    card = path.with_suffix(".json")
    if path.exists() and card.exists():
        record = json.loads(card.read_text())
        net = SeriesCNN(train.shape[0], train.num_classes)
        net.load_state_dict(load_file(str(path)))
        if record.get("sha256") != sha256(path):
            raise RuntimeError(f"{path} does not match the sha256 in {card}; delete both to train it again")
        return Embedding(net.eval()), record
    t0 = time.perf_counter()
    net = train_features(train, updates)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    emb = Embedding(net)
    per_class = [s.float() for s in heldout.images]
    shots = min(5, heldout.min_class_size - 1)
    n_way = min(5, heldout.num_classes)
    acc, ci = few_shot_accuracy(emb, per_class, n_way, 1, EPISODES, seed=1, q=1)
    acc_k, ci_k = few_shot_accuracy(emb, per_class, n_way, shots, EPISODES, seed=1, q=1)
    record = {"file": path.name, "sha256": sha256(path),
              "network": f"SeriesCNN: 3 x [conv1d {'/'.join(map(str, KERNELS))}, GroupNorm, ReLU, maxpool 2], "
                         f"global average pool, {WIDTH}-d features",
              "trained_on": f"{train.name}: {train.num_classes} training classes, {sum(train.class_sizes)} series, "
                            f"cross-entropy, {updates} Adam updates of {BATCH}, seed 0",
              f"heldout_{n_way}way_1shot": [round(acc, 4), round(ci, 4)],
              f"heldout_{n_way}way_{shots}shot": [round(acc_k, 4), round(ci_k, 4)]}
    card.write_text(json.dumps(record, indent=2) + "\n")
    log(json.dumps({"feature_net": record, "train_seconds": round(time.perf_counter() - t0, 1)}))
    return emb, record
