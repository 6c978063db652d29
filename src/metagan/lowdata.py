"""The low-data downstream protocol: a small CNN over held-out classes, trained on n real images per class with or
without classic augmentation and generated images, for the same number of optimiser updates in every arm.

Arms (ARMS), each trained for `protocol.lowdata_updates` Adam updates on batches of BATCH images:

- "none": real images only.
- "affine": real images, each under a fresh random affine transform (`baselines.random_affine`, the family of
  `affine_augmenter`) every time it enters a batch.
- "generated": round(share x BATCH) images of each batch drawn from the method's generated pool
  (`protocol.lowdata_generated` per class, the generator adapted on the class's n real images), real images for
  the rest.
- "affine + generated": both; every image of a batch, real or generated, under a fresh random transform (how a
  user combines the two: the classic augmentation applies to the whole training set); the generated images' transforms
  come from a stream of their own.

Random streams, each seeded from its own key and nothing else, so that methods and arms are paired:

- split: class c's n training and 20 - n test images, from (protocol seed, n, c): the same for every method and arm.
- generate: the method's sampling for class c, from (protocol seed, n, c): a method that draws more randomness moves
  nothing else.
- classifier: initialisation, the order of the real images, the picks from the generated pool, the affine
  transforms of the real images and those of the generated ones, each its own stream from (protocol seed, n):
  every arm starts from the same network and sees the real images in the same order.

The generated share is chosen on validation classes (`choose_share`), never on the evaluated ones.

A domain brings its classifier and its classic augmentation as a `Classifier` kit (`IMAGES`: SmallCNN and
random_affine, whose arm is "affine"; the time-series suite: a 1-D CNN and jitter, scaling, warping and window
slicing); arms, streams and update counts are the same for every domain.

Example:
    >>> result = lowdata_accuracy(gen, heldout, classes, protocol, arms=("generated",), share=0.5)
    >>> result["arms"]["generated"]["5"]  # test accuracy with 5 real images per class
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .baselines import random_affine
from .data import ClassDataset, as_model_space

FewShotGenerator = Optional[Callable[[Tensor, int, torch.Generator], Tensor]]

ARMS = ("none", "affine", "generated", "affine + generated")
BATCH = 64


def default_arms(gen: FewShotGenerator, augment_arm: str = "affine") -> tuple[str, ...]:
    """The arms of a method: its two uses of generated images, or the two real-only references without one
    (augment_arm: the name of the domain's classic-augmentation arm, `Classifier.augment_arm`)."""
    return ("none", augment_arm) if gen is None else ("generated", f"{augment_arm} + generated")


def _seed(*key) -> int:
    """A 63-bit seed from a key of ints and strings (stable across runs and platforms)."""
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") >> 1


def _stream(*key) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(*key))


def class_split(images: Tensor, n: int, seed: int, c: int) -> tuple[Tensor, Tensor]:
    """Class c's (n training images, the other images for testing), uint8, from the split stream (seed, n, c)."""
    idx = torch.randperm(len(images), generator=_stream("split", seed, n, c))
    return images[idx[:n]], images[idx[n:]]


@dataclass(frozen=True)
class Classifier:
    """What the low-data protocol takes from a domain.

    make_net(n_classes, example (1, *shape)) -> a fresh nn.Module mapping (N, *shape) to (N, n_classes) logits
    (built under the classifier's seed); augment(x (N, *shape), generator) -> the real examples of a batch under
    fresh random transforms (the augmentation arm); augment_arm: that arm's name.
    """
    make_net: Callable[[int, Tensor], nn.Module]
    augment: Callable[[Tensor, torch.Generator], Tensor]
    augment_arm: str = "affine"

    @property
    def arms(self) -> tuple[str, ...]:
        return ("none", self.augment_arm, "generated", f"{self.augment_arm} + generated")


# images; the names are looked up at call time, so a test can wrap random_affine or SmallCNN
IMAGES = Classifier(lambda n_classes, x: SmallCNN(n_classes), lambda x, g: random_affine(x, g), "affine")


@dataclass
class _Cell:
    """One (classes, n) cell: real training images and labels, test images and labels, the generated pool."""
    x: Tensor  # (classes * n, C, H, W) model space
    y: Tensor
    test_x: Tensor
    test_y: Tensor
    gen_x: Tensor | None  # (classes * lowdata_generated, C, H, W), None without a generator
    gen_y: Tensor | None
    kit: Classifier = field(default=IMAGES)  # the domain's classifier and classic augmentation


def _cell(gen: FewShotGenerator, dataset: ClassDataset, classes: list[int], n: int, protocol,
          kit: Classifier = IMAGES) -> _Cell:
    xs, xts, gs = [], [], []
    for c in classes:
        train, test = class_split(dataset.images[c], n, protocol.seed, c)
        xs.append(as_model_space(train))
        xts.append(as_model_space(test))
        if gen is not None:
            with torch.no_grad():
                gs.append(gen(xs[-1], protocol.lowdata_generated, _stream("generate", protocol.seed, n, c)).float())

    def labels(parts):
        return torch.cat([torch.full((len(p),), i) for i, p in enumerate(parts)])
    return _Cell(torch.cat(xs), labels(xs), torch.cat(xts), labels(xts),
                 torch.cat(gs) if gs else None, labels(gs) if gs else None, kit)


def _cycle(count: int, total: int, generator: torch.Generator) -> Tensor:
    """`total` indices into `count` items: successive random permutations (each item once per pass)."""
    passes = -(-total // count)
    return torch.cat([torch.randperm(count, generator=generator) for _ in range(passes)])[:total]


class SmallCNN(nn.Module):
    """3 x [conv3x3 width, GroupNorm, ReLU, maxpool] + linear: (N, 1, H, W) -> (N, n_classes) logits."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        blocks = []
        for cin in (1, width, width):
            blocks += [nn.Conv2d(cin, width, 3, padding=1), nn.GroupNorm(8, width), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.LazyLinear(n_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def train_classifier(x: Tensor, y: Tensor, n_classes: int, updates: int, seed: int, affine: bool = False,
                     gen_x: Tensor | None = None, gen_y: Tensor | None = None, share: float = 0.0,
                     kit: Classifier = IMAGES) -> nn.Module:
    """The kit's classifier (IMAGES: a SmallCNN) after `updates` Adam (2e-3) updates on batches of BATCH examples;
    x (N, *shape) model space.

    With gen_x, each batch holds round(share x BATCH) generated examples (gen_x, gen_y) and real ones for the rest;
    affine: each example of a batch under a fresh random transform of the kit (`kit.augment`; random_affine for
    images), the real ones from one stream and the generated ones from another. `seed` seeds the classifier's
    streams.
    """
    n_gen = round(share * BATCH) if gen_x is not None else 0
    if gen_x is not None and not 0 < n_gen < BATCH:
        raise ValueError(f"a generated share must leave real and generated images in a batch of {BATCH}, got {share}")
    n_real = BATCH - n_gen
    order = _cycle(len(x), updates * n_real, _stream("order", seed))
    picks = _cycle(len(gen_x), updates * n_gen, _stream("mix", seed)) if n_gen else None
    g_affine, g_affine_gen = _stream("affine", seed), _stream("affine-generated", seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = kit.make_net(n_classes, x[:1])
        net(x[:1])  # materialise a lazy head
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for step in range(updates):
        idx = order[step * n_real:(step + 1) * n_real]
        xb, yb = x[idx], y[idx]
        if affine:
            xb = kit.augment(xb, g_affine)
        if n_gen:
            gi = picks[step * n_gen:(step + 1) * n_gen]
            xg = kit.augment(gen_x[gi], g_affine_gen) if affine else gen_x[gi]
            xb, yb = torch.cat([xb, xg]), torch.cat([yb, gen_y[gi]])
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def _accuracy(net: nn.Module, x: Tensor, y: Tensor, batch: int = 512) -> float:
    pred = torch.cat([net(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).double().mean())


def _arm_accuracy(cell: _Cell, arm: str, share: float, n_classes: int, updates: int, seed: int) -> float:
    generated, aug = "generated" in arm, cell.kit.augment_arm
    if generated and cell.gen_x is None:
        raise ValueError(f"the {arm!r} arm needs a generator; a method without one has the arms 'none' and {aug!r}")
    net = train_classifier(cell.x, cell.y, n_classes, updates, seed, affine=aug in arm,
                           gen_x=cell.gen_x if generated else None, gen_y=cell.gen_y if generated else None,
                           share=share, kit=cell.kit)
    return _accuracy(net, cell.test_x, cell.test_y)


def lowdata_accuracy(gen: FewShotGenerator, dataset: ClassDataset, classes: list[int], protocol,
                     arms: tuple[str, ...] | None = None, share: float | None = None,
                     kit: Classifier = IMAGES) -> dict:
    """Test accuracy per arm and n of a classifier over `classes`, trained on n real images per class (and the
    method's generated ones, share `share` of each batch; default `protocol.lowdata_share`). kit: the domain's
    classifier and augmentation (its arms: kit.arms).

    Returns {"share": share or None without a generated arm, "updates": ..., "arms": {arm: {str(n): accuracy}}}.
    """
    arms = default_arms(gen, kit.augment_arm) if arms is None else tuple(arms)
    unknown = set(arms) - set(kit.arms)
    if unknown:
        raise ValueError(f"unknown low-data arms {sorted(unknown)}; arms are: {', '.join(kit.arms)}")
    if dataset.min_class_size <= max(protocol.lowdata_n):
        raise ValueError(f"low-data classes need more than n={max(protocol.lowdata_n)} images (some for testing), "
                         f"the smallest has {dataset.min_class_size}")
    generated = any("generated" in a for a in arms)
    share = (protocol.lowdata_share if share is None else share) if generated else None
    out: dict = {"share": share, "updates": protocol.lowdata_updates, "arms": {a: {} for a in arms}}
    for n in protocol.lowdata_n:
        cell = _cell(gen if generated else None, dataset, classes, n, protocol, kit)
        for arm in arms:
            out["arms"][arm][str(n)] = _arm_accuracy(cell, arm, share, len(classes), protocol.lowdata_updates,
                                                     _seed("classifier", protocol.seed, n))
    return out


def choose_share(gen: FewShotGenerator, dataset: ClassDataset, classes: list[int], protocol,
                 shares: tuple[float, ...] | None = None, kit: Classifier = IMAGES) -> dict:
    """The generated share with the best "generated" accuracy at the smallest n on `classes` of `dataset` (pass
    validation classes, never the evaluated ones); ties go to the smaller share. The generated pool is drawn once.

    Returns {"share": chosen, "acc": {str(share): accuracy}, "n": n, "classes": len(classes)}.
    """
    shares = tuple(protocol.lowdata_shares if shares is None else shares)
    if gen is None or not shares:
        raise ValueError("choose_share needs a generator and at least one share")
    n = min(protocol.lowdata_n)
    cell = _cell(gen, dataset, classes, n, replace(protocol, lowdata_n=(n,)), kit)
    seed = _seed("classifier", protocol.seed, n)
    acc = {str(s): _arm_accuracy(cell, "generated", s, len(classes), protocol.lowdata_updates, seed) for s in shares}
    best = max(shares, key=lambda s: (acc[str(s)], -s))
    return {"share": best, "acc": acc, "n": n, "classes": len(classes)}
