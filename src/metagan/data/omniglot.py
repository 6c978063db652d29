"""Omniglot as two ClassDatasets (train, held-out), ink bright, resized to ``image_size``.

Splits (``DataConfig.split``):

- ``background``: train = the 964 characters of the 30 background alphabets, held out = the 659
  characters of the 20 evaluation alphabets. Class names ``Alphabet/characterNN``.
- ``background-val``: for design decisions without the evaluation alphabets. Train = the background
  characters minus those of 5 validation alphabets (``VALIDATION_ALPHABETS``: the first 5 of
  ``torch.randperm(30)`` with seed 0 over the background alphabets in ``alphabets.csv`` order), held out =
  the characters of those 5 alphabets (Greek, Gujarati, Mkhedruli_(Georgian), Sanskrit, Tifinagh).
- ``vinyals``: the Vinyals et al. (2016) split used by MAML and Prototypical Networks. Each class
  is a character rotated by 0, 90, 180 or 270 degrees: train = ``trainval.txt`` (4,800 classes),
  held out = ``test.txt`` (1,692 classes). Class names ``Alphabet/characterNN/rotDDD``. Rotations
  are ``torch.rot90(k=DDD/90)`` over (H, W) on the 105 x 105 drawing, before resizing:
  counter-clockwise as displayed (row 0 at the top), like ``np.rot90`` and PIL's ``rotate(DDD)``.

Where the files live and how they are checked: see ``omniglot_files``.

Example:
    >>> from metagan.config import DataConfig
    >>> train, held = load_omniglot(DataConfig(source="omniglot", root="../shared/data/omniglot",
    ...                                        image_size=28))      # doctest: +SKIP
    >>> train.num_classes, held.num_classes, train.images[0].shape   # doctest: +SKIP
    (964, 659, torch.Size([20, 1, 28, 28]))
"""
from __future__ import annotations

import re
from importlib import resources

import torch

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .base import ClassDataset, expand_channels, resize_to_uint8
from .omniglot_files import OmniglotSet, data_dir, load_sets, read_alphabets

VINYALS_SPLITS = ("train", "val", "trainval", "test")
# background alphabets held out by data.split=background-val: validation_alphabets() chose them once
VALIDATION_ALPHABETS = ("Greek", "Gujarati", "Mkhedruli_(Georgian)", "Sanskrit", "Tifinagh")
_LINE = re.compile(r"^([^/\s]+)/character(\d+)/rot(\d{3})$")
_CHUNK = 256  # characters resized per batch: 256 x 20 x 105 x 105 floats = 226 MB at most


def load_omniglot(cfg: DataConfig) -> tuple[ClassDataset, ClassDataset]:
    """Omniglot per ``cfg`` (root, split, image_size, channels, download) -> (train, held-out)."""
    if cfg.heldout:
        raise ConfigError(f"data.heldout={','.join(cfg.heldout)!r} does not apply to Omniglot, whose held-out "
                          "classes are fixed by data.split (background or vinyals); leave data.heldout empty")
    if cfg.split not in ("background", "background-val", "vinyals"):
        raise ConfigError(f"data.split={cfg.split!r} is not one of: background, background-val, vinyals")
    sets = load_sets(data_dir(cfg.root), cfg.download)
    names = character_names()
    if cfg.split == "background":
        def whole(set_name: str) -> list[tuple[int, int, str]]:
            return [(int(c), 0, names[int(c)]) for c in sets[set_name].char_ids]
        return (_build("omniglot/background", sets, whole("images_background"), cfg),
                _build("omniglot/evaluation", sets, whole("images_evaluation"), cfg))
    if cfg.split == "background-val":
        held = {a.first_id + i for a in read_alphabets() if a.name in VALIDATION_ALPHABETS
                for i in range(a.last_id - a.first_id + 1)}
        rows = [(int(c), 0, names[int(c)]) for c in sets["images_background"].char_ids]
        return (_build("omniglot/background-train", sets, [r for r in rows if r[0] not in held], cfg),
                _build("omniglot/background-val", sets, [r for r in rows if r[0] in held], cfg))
    train = _build("omniglot/vinyals-trainval", sets, vinyals_split("trainval"), cfg)
    return train, _build("omniglot/vinyals-test", sets, vinyals_split("test"), cfg)


def validation_alphabets(seed: int = 0, count: int = 5) -> tuple[str, ...]:
    """The background alphabets that data.split=background-val holds out: the first `count` of a seeded
    permutation of the 30 background alphabets (alphabets.csv order), sorted. VALIDATION_ALPHABETS is its
    value for the defaults, written out so that the split is visible in the code."""
    background = [a.name for a in read_alphabets() if a.set == "background"]
    pick = torch.randperm(len(background), generator=torch.Generator().manual_seed(seed))[:count]
    return tuple(sorted(background[i] for i in pick.tolist()))


def character_names() -> dict[int, str]:
    """Global character id -> ``Alphabet/characterNN`` for all 1,623 characters."""
    return {a.first_id + i: f"{a.name}/character{i + 1:02d}"
            for a in read_alphabets() for i in range(a.last_id - a.first_id + 1)}


def vinyals_split(which: str) -> list[tuple[int, int, str]]:
    """Lines of the packaged Vinyals split ``which`` -> [(character id, quarter turns k, class name)]."""
    if which not in VINYALS_SPLITS:
        raise ValueError(f"unknown Vinyals split {which!r}; choose one of {VINYALS_SPLITS}")
    text = resources.files(__package__).joinpath(f"splits/vinyals/{which}.txt").read_text()
    alphabets = {a.name: a for a in read_alphabets()}
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        a = alphabets.get(m[1]) if m else None
        nn, degrees = (int(m[2]), int(m[3])) if m else (0, -1)
        if a is None or not 1 <= nn <= a.last_id - a.first_id + 1 or degrees not in (0, 90, 180, 270):
            raise DataError(f"splits/vinyals/{which}.txt line {number}: {line!r} is not "
                            "Alphabet/characterNN/rotDDD with a known alphabet, character and rotation; "
                            "the packaged split file is damaged: reinstall metagan")
        entries.append((a.first_id + nn - 1, degrees // 90, line.strip()))
    return entries


def _build(name: str, sets: dict[str, OmniglotSet], entries: list[tuple[int, int, str]],
           cfg: DataConfig) -> ClassDataset:
    """[(character id, k, class name)] -> ClassDataset of uint8 (20, C, size, size) per class, ink = 255."""
    where = {int(c): (s, row) for s in sets.values() for row, c in enumerate(s.char_ids)}
    images: list[torch.Tensor] = []
    for start in range(0, len(entries), _CHUNK):
        chunk = entries[start:start + _CHUNK]
        drawings = []
        for char_id, k, class_name in chunk:
            if char_id not in where:
                raise DataError(f"{name}: class {class_name} needs character {char_id:04d}, which the Omniglot "
                                f"files do not contain; use the complete images_background/images_evaluation files")
            s, row = where[char_id]
            ink = torch.from_numpy(~s.images[row])  # (20, 105, 105), True = ink
            drawings.append(torch.rot90(ink, k, dims=(-2, -1)) if k else ink)
        x = torch.stack(drawings)  # (n, 20, 105, 105)
        n, d, h, w = x.shape
        small = resize_to_uint8(x.reshape(n * d, 1, h, w), cfg.image_size)
        small = expand_channels(small, cfg.channels).reshape(n, d, cfg.channels, cfg.image_size, cfg.image_size)
        images.extend(small.unbind(0))
    return ClassDataset(name, images, [class_name for _, _, class_name in entries])
