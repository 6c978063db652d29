"""Few-shot generation evaluation on held-out classes, in the shipped feature network's space.

A method is a few-shot generator: `gen(support (K, C, H, W), n, generator) -> (n, C, H, W)`, images in
model space ([-1, 1], ink bright), or None for "no augmentation". Protocol (docs/evaluation.md):

1. `protocol.classes` held-out classes, chosen by a seeded permutation; for each, `support_draws`
   seeded support sets of K images; the class's other images are its real reference ("rest").
2. `samples` generated images per class and draw.
3. Pooled over classes: Frechet distance against the rest, and class fidelity with N-way prototypical
   classifiers built from the K real supports (classes in groups of `n_way`), each per support draw and
   reported as the mean over draws with a 95% confidence interval; on draw 0: KID, precision/recall/
   density/coverage, and per class and averaged, diversity and copy ratio.
4. protonet_acc: `episodes` N-way episodes over the chosen classes and draws; prototypes from the K real
   supports plus `proto_generated` generated samples per class; 5 queries per class from the rest.
5. lowdata_acc: a small CNN over the chosen classes trained on n real images per class (plus
   `lowdata_generated` generated ones, adapted from those n) and tested on the class's other images.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from scipy.stats import t as student_t
from torch import Tensor, nn

from .data import ClassDataset, to_model_space
from .metrics import class_fidelity, copy_ratio, diversity, frechet_distance, kernel_distance, prdc
from .metrics.fewshot import distances

FewShotGenerator = Optional[Callable[[Tensor, int, torch.Generator], Tensor]]


@dataclass(frozen=True)
class Protocol:
    classes: int = 20
    samples: int = 50
    support_draws: int = 2
    n_way: int = 20
    episodes: int = 200
    proto_generated: int = 5
    lowdata_n: tuple[int, ...] = (5, 10, 15)
    lowdata_generated: int = 20
    lowdata_epochs: int = 15
    seed: int = 0


PROTOCOLS = {
    "small": Protocol(),
    "full": Protocol(classes=100, samples=100, support_draws=5, episodes=1000, lowdata_generated=40,
                     lowdata_epochs=40),
}


@torch.no_grad()
def embed(net: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    return torch.cat([net(x[i:i + batch].float()) for i in range(0, len(x), batch)])


def ci95(values: list[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t: the support draws are few)."""
    if len(values) < 2:
        return 0.0
    t = torch.tensor(values, dtype=torch.float64)
    return float(student_t.ppf(0.975, len(values) - 1) * t.std() / math.sqrt(len(values)))


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and 95% confidence half-width (t) of the per-draw differences a - b of two methods evaluated on the
    same classes, support draws and generation seeds: the interval for comparing them. It is narrower than either
    method's own interval when both move together from draw to draw (an easier or harder set of supports), which
    is most of the spread of FD here. NaN where a draw of either is undefined."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs the same draws on both sides (got {len(a)} and {len(b)})")
    diffs = [x - y for x, y in zip(a, b)]
    if any(d != d for d in diffs):
        return float("nan"), float("nan")
    return sum(diffs) / len(diffs), ci95(diffs)


def chosen_classes(heldout: ClassDataset, protocol: Protocol) -> list[int]:
    """The evaluated held-out classes: the first `protocol.classes` of a seeded permutation."""
    g = torch.Generator().manual_seed(protocol.seed)
    return torch.randperm(heldout.num_classes, generator=g)[: protocol.classes].tolist()


def _draws(heldout: ClassDataset, protocol: Protocol, k: int):
    """classes (list of int) and, per class and draw, (support uint8 (k, ...), rest uint8 (n-k, ...))."""
    classes = chosen_classes(heldout, protocol)
    g = torch.Generator().manual_seed(protocol.seed + 7)
    draws = []
    for c in classes:
        imgs = heldout.images[c]
        per = []
        for _ in range(protocol.support_draws):
            idx = torch.randperm(len(imgs), generator=g)
            per.append((imgs[idx[:k]], imgs[idx[k:]]))
        draws.append(per)
    return classes, draws


def generate_all(gen: FewShotGenerator, draws, n: int, seed: int) -> list[list[Tensor]]:
    """Generated images per class and draw (model space)."""
    out = []
    for ci, per in enumerate(draws):
        row = []
        for di, (support, _) in enumerate(per):
            g = torch.Generator().manual_seed(seed * 1_000_003 + ci * 1009 + di)
            with torch.no_grad():
                row.append(gen(to_model_space(support), n, g).float())
        out.append(row)
    return out


def _fidelity(gen: list[Tensor], sup: list[Tensor], n_way: int) -> float:
    groups = [class_fidelity(gen[i:i + n_way], sup[i:i + n_way]) for i in range(0, len(gen), n_way)]
    return sum(groups) / len(groups)


def _over_draws(key: str, values: list[float]) -> dict:
    """A per-draw metric as reported: its mean, the 95% confidence half-width and the values."""
    return {key: sum(values) / len(values), f"{key}_ci95": ci95(values), f"{key}_draws": values}


def generative_metrics(net, draws, fakes, protocol: Protocol) -> dict:
    """FD and fidelity per support draw (mean and 95% CI over draws); the other metrics on draw 0."""
    n_draws = len(draws[0])
    sups = [[embed(net, to_model_space(per[d][0])) for per in draws] for d in range(n_draws)]
    rests = [[embed(net, to_model_space(per[d][1])) for per in draws] for d in range(n_draws)]
    gens = [[embed(net, row[d]) for row in fakes] for d in range(n_draws)]
    fds = [frechet_distance(torch.cat(rests[d]), torch.cat(gens[d])) for d in range(n_draws)]
    fids = [_fidelity(gens[d], sups[d], protocol.n_way) for d in range(n_draws)]
    sup, rest, gen = sups[0], rests[0], gens[0]
    real_pool, fake_pool = torch.cat(rest), torch.cat(gen)
    kid_mean, kid_std = kernel_distance(real_pool, fake_pool, subsets=50, seed=protocol.seed)
    return {
        **_over_draws("fd", fds),
        "kid": kid_mean, "kid_std": kid_std,
        **prdc(real_pool, fake_pool, k=5),
        **_over_draws("fidelity", fids),
        # adapted generators (class x draw) whose samples are not all finite: their draw's FD is NaN
        "nonfinite_sets": sum(int(not torch.isfinite(f).all()) for row in fakes for f in row),
        "sets": sum(len(row) for row in fakes),
        "diversity": sum(diversity(g, r) for g, r in zip(gen, rest)) / len(gen),
        "copy_ratio": sum(copy_ratio(g, s, r) for g, s, r in zip(gen, sup, rest)) / len(gen),
        "copy_ratio_real": sum(copy_ratio(r[: len(r) // 2], s, r[len(r) // 2:]) for s, r in zip(sup, rest)) / len(gen),
    }


def protonet_accuracy(net, draws, fakes, protocol: Protocol, queries: int = 5) -> dict:
    """N-way accuracy with prototypes from real supports (+ generated samples when fakes is given)."""
    g = torch.Generator().manual_seed(protocol.seed + 1)
    feats = [[(embed(net, to_model_space(s)), embed(net, to_model_space(r))) for s, r in per] for per in draws]
    gfeats = [[embed(net, f[:protocol.proto_generated]) for f in row] for row in fakes] if fakes else None
    n_way = min(protocol.n_way, len(draws))
    accs = []
    for _ in range(protocol.episodes):
        classes = torch.randperm(len(draws), generator=g)[:n_way].tolist()
        protos, qs = [], []
        for c in classes:
            d = int(torch.randint(len(draws[c]), (1,), generator=g))
            s, r = feats[c][d]
            protos.append(torch.cat([s, gfeats[c][d]]).mean(0) if gfeats else s.mean(0))
            qs.append(r[torch.randperm(len(r), generator=g)[:queries]])
        labels = torch.arange(n_way).repeat_interleave(queries)
        pred = distances(torch.cat(qs), torch.stack(protos)).argmin(1)
        accs.append(float((pred == labels).double().mean()))
    return {"mean": sum(accs) / len(accs), "ci95": ci95(accs), "n_way": n_way, "episodes": protocol.episodes}


class _SmallCNN(nn.Module):
    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        blocks = []
        for cin in (1, width, width):
            blocks += [nn.Conv2d(cin, width, 3, padding=1), nn.GroupNorm(8, width), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.LazyLinear(n_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def _train_classifier(x: Tensor, y: Tensor, n_classes: int, epochs: int, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _SmallCNN(n_classes)
        net(x[:1])  # materialise the lazy head
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(64):
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return net.eval()


def lowdata_accuracy(gen: FewShotGenerator, heldout: ClassDataset, classes: list[int], protocol: Protocol) -> dict:
    """Test accuracy of a classifier over `classes` trained on n real (+ generated) images per class."""
    out = {}
    for n in protocol.lowdata_n:
        g = torch.Generator().manual_seed(protocol.seed + 100 + n)
        xs, ys, xt, yt = [], [], [], []
        for label, c in enumerate(classes):
            imgs = heldout.images[c]
            idx = torch.randperm(len(imgs), generator=g)
            train, test = to_model_space(imgs[idx[:n]]), to_model_space(imgs[idx[n:]])
            if gen is not None:
                with torch.no_grad():
                    train = torch.cat([train, gen(train, protocol.lowdata_generated, g).float()])
            xs.append(train)
            ys.append(torch.full((len(train),), label))
            xt.append(test)
            yt.append(torch.full((len(test),), label))
        x, y = torch.cat(xs), torch.cat(ys)
        net = _train_classifier(x, y, len(classes), protocol.lowdata_epochs, protocol.seed)
        with torch.no_grad():
            pred = net(torch.cat(xt)).argmax(1)
        out[str(n)] = float((pred == torch.cat(yt)).double().mean())
    return out


def validation_metrics(gen: FewShotGenerator, train: ClassDataset, k: int, net: nn.Module,
                       protocol: Protocol) -> dict:
    """The generative metrics on `protocol.classes` *training* classes (support and reference images drawn with
    another seed than the evaluation's), for choosing among checkpoints without looking at the evaluation
    split (`metagan rank`). The feature network was trained on these classes too, so its numbers are not
    comparable with `evaluate`'s; they rank checkpoints of one model."""
    classes, draws = _draws(train, replace(protocol, seed=protocol.seed + 1000), k)
    fakes = generate_all(gen, draws, protocol.samples, protocol.seed + 1000)
    return {"k": k, "classes": len(classes), **generative_metrics(net, draws, fakes, protocol)}


def evaluate(gen: FewShotGenerator, heldout: ClassDataset, k: int, net: nn.Module, protocol: Protocol,
             lowdata: dict | None = None) -> dict:
    """Every metric of one method at one K. Generative metrics are None for gen=None. The low-data
    protocol does not depend on K (it adapts on the n training images): pass `lowdata` to reuse it."""
    if heldout.min_class_size < k + 2:
        raise ValueError(f"held-out classes need at least K+2={k + 2} images, the smallest has "
                         f"{heldout.min_class_size}")
    classes, draws = _draws(heldout, protocol, k)
    fakes = generate_all(gen, draws, protocol.samples, protocol.seed) if gen is not None else None
    result: dict = {"k": k, "protocol": asdict(protocol)}
    keys = ("fd", "fd_ci95", "fd_draws", "kid", "kid_std", "precision", "recall", "density", "coverage", "fidelity",
            "fidelity_ci95", "fidelity_draws", "nonfinite_sets", "sets", "diversity", "copy_ratio", "copy_ratio_real")
    result.update(generative_metrics(net, draws, fakes, protocol) if fakes else dict.fromkeys(keys))
    result["protonet_acc"] = protonet_accuracy(net, draws, fakes, protocol)
    result["lowdata_acc"] = lowdata if lowdata is not None else lowdata_accuracy(gen, heldout, classes, protocol)
    return result
