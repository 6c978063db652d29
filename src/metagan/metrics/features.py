"""The evaluation's feature network: a Conv-4 embedding trained as a prototypical network
(Snell et al. 2017) on the Omniglot **background** classes only, never on evaluation classes.

Inception-based FID and LPIPS need downloaded ImageNet weights and suit neither offline machines nor
handwriting; this network is small, trained here by one command, shipped with its hash, and its own
quality (N-way K-shot accuracy on the evaluation classes) is reported beside it.

    metagan features train --out src/metagan/assets/features-omniglot-conv4.safetensors

Input: images in model space, (B, 1, H, W) in [-1, 1], ink bright, any H = W (resized to 28).
Output: (B, 64) embeddings.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..data.base import as_model_space
from ..errors import CheckpointError

SIZE = 28
ASSET = Path(__file__).resolve().parents[1] / "assets" / "features-omniglot-conv4.safetensors"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.ReLU(), nn.MaxPool2d(2))


class Conv4(nn.Module):
    """4 x [conv3x3 64, GroupNorm, ReLU, maxpool 2]: 28 -> 14 -> 7 -> 3 -> 1, flattened to 64."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(_block(1, width), _block(width, width), _block(width, width), _block(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) in [-1, 1] -> (B, 64)
        if x.shape[-1] != SIZE:
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.net(x).flatten(1)


def proto_logits(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """support (N, K, D), query (M, D) -> (M, N) negative squared distances to class prototypes."""
    protos = support.mean(1)
    return -torch.cdist(query, protos).pow(2)


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_feature_net(path: str | Path | None = None) -> Conv4:
    """The shipped network (or `path`), in eval mode, with its hash checked against its card."""
    path = Path(path) if path else ASSET
    card_path = path.with_suffix(".json")
    if not path.exists():
        raise CheckpointError(f"feature network {path} is missing; rebuild it with "
                              f"`metagan features train --out {path}`")
    if card_path.exists():
        want = json.loads(card_path.read_text()).get("sha256")
        if want and want != sha256(path):
            raise CheckpointError(f"{path} does not match the sha256 in {card_path}: the file is damaged or "
                                  "was replaced; restore it from git or retrain it")
    net = Conv4()
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def _episode(images: list[torch.Tensor], n_way: int, k: int, q: int, g: torch.Generator):
    """images: per-class uint8 (n_i, 1, 28, 28) -> support (N, K, 1, 28, 28), query (N, Q, ...) in [-1, 1]
    (float examples, such as series (n_i, C, L), are in model space already and pass as they are)."""
    classes = torch.randperm(len(images), generator=g)[:n_way]
    sup, qry = [], []
    for c in classes.tolist():
        idx = torch.randperm(images[c].shape[0], generator=g)[: k + q]
        x = as_model_space(images[c][idx])
        sup.append(x[:k])
        qry.append(x[k:])
    return torch.stack(sup), torch.stack(qry)


@torch.no_grad()
def few_shot_accuracy(net: nn.Module, images: list[torch.Tensor], n_way: int, k: int, episodes: int,
                      seed: int = 0, q: int = 5) -> tuple[float, float]:
    """Mean N-way K-shot accuracy over `episodes` and its 95% confidence half-width."""
    g = torch.Generator().manual_seed(seed)
    accs = []
    for _ in range(episodes):
        sup, qry = _episode(images, n_way, k, q, g)
        emb_s = net(sup.flatten(0, 1)).view(n_way, k, -1)
        emb_q = net(qry.flatten(0, 1))
        labels = torch.arange(n_way).repeat_interleave(q)
        accs.append(float((proto_logits(emb_s, emb_q).argmax(1) == labels).float().mean()))
    t = torch.tensor(accs)
    return float(t.mean()), float(1.96 * t.std() / math.sqrt(len(accs)))


def train_feature_net(train_images: list[torch.Tensor], steps: int = 1000, n_way: int = 20, k: int = 5,
                      q: int = 5, lr: float = 1e-3, seed: int = 0, log=print) -> Conv4:
    """Prototypical-network training on `train_images` (the background classes, uint8 (n, 1, 28, 28))."""
    torch.manual_seed(seed)
    net = Conv4()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, steps // 3), gamma=0.5)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_way).repeat_interleave(q)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        sup, qry = _episode(train_images, n_way, k, q, g)
        emb = net(torch.cat([sup.flatten(0, 1), qry.flatten(0, 1)]))
        logits = proto_logits(emb[: n_way * k].view(n_way, k, -1), emb[n_way * k:])
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            acc = float((logits.argmax(1) == labels).float().mean())
            log(json.dumps({"step": step, "loss": round(loss.item(), 4), "train_acc": round(acc, 4),
                            "elapsed_s": round(time.perf_counter() - t0, 1)}))
    return net.eval()


def save_feature_net(net: Conv4, path: str | Path, card: dict) -> dict:
    """Write the weights (safetensors) and a JSON card beside them holding the sha256 and `card`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    card = {**card, "sha256": sha256(path), "file": path.name}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


EVAL_SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))


def build(data_root: str | None, out: str | Path, steps: int = 1000, episodes: int = 600, log=print) -> dict:
    """Train on the background classes, measure N-way K-shot accuracy on the evaluation classes, save."""
    from ..config import DataConfig
    from ..data import build_datasets

    background, evaluation = build_datasets(DataConfig(source="omniglot", split="background", image_size=SIZE,
                                                       root=data_root))
    t0 = time.perf_counter()
    net = train_feature_net(background.images, steps=steps, log=log)
    train_s = time.perf_counter() - t0
    accuracy = {}
    for n, k in EVAL_SETTINGS:
        mean, ci = few_shot_accuracy(net, evaluation.images, n, k, episodes, seed=1)
        accuracy[f"{n}way_{k}shot"] = {"mean": round(mean, 4), "ci95": round(ci, 4)}
        log(json.dumps({"eval": f"{n}-way {k}-shot", "acc": round(mean, 4), "ci95": round(ci, 4)}))
    card = {"network": "Conv4 (4 x conv3x3-64, GroupNorm, ReLU, maxpool), 64-d embedding",
            "trained_on": f"Omniglot background split ({background.num_classes} classes), 28x28, "
                          "prototypical loss, 20-way 5-shot 5-query episodes, Adam 1e-3 halved every third",
            "steps": steps, "seed": 0, "train_seconds": round(train_s, 1),
            "command": f"metagan features train --out {out} --steps {steps}",
            "evaluated_on": f"Omniglot evaluation split ({evaluation.num_classes} classes), {episodes} episodes "
                            "of 5 queries per class, seed 1",
            "accuracy": accuracy}
    return save_feature_net(net, out, card)
