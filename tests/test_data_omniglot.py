"""Omniglot from the shared npz files: shapes, polarity, names, splits, and no held-out leakage."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from metagan.config import DataConfig
from metagan.data import TaskSampler, build_datasets, from_model_space
from metagan.data.omniglot import vinyals_split
from metagan.data.omniglot_files import data_dir
from metagan.errors import ConfigError, DataError

from conftest import OMNIGLOT, needs_omniglot, omniglot_dir

SHARED = OMNIGLOT or Path("/nonexistent")  # the tests that read it are marked or call omniglot_dir()
PACKAGED = Path(__file__).resolve().parents[1] / "src" / "metagan" / "data" / "splits"
needs_shared = needs_omniglot



@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Decode and resize on one thread: on a shared 2-core machine that is busy with other jobs,
    OpenMP threads spin-waiting on each other make these tensor-heavy tests 10x slower. Results do
    not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

def _cfg(**kw) -> DataConfig:
    return DataConfig(source="omniglot", root=str(SHARED), image_size=28, download=False, **kw)


@pytest.fixture(scope="module")
def background():
    omniglot_dir()
    return build_datasets(_cfg())


@pytest.fixture(scope="module")
def vinyals():
    omniglot_dir()
    return build_datasets(_cfg(split="vinyals"))


def _by_name(ds):
    return dict(zip(ds.class_names, ds.images, strict=True))


@needs_shared
def test_background_split_shapes_names_and_polarity(background):
    train, held = background
    assert (train.num_classes, held.num_classes) == (964, 659)
    assert train.name == "omniglot/background" and held.name == "omniglot/evaluation"
    assert all(x.shape == (20, 1, 28, 28) and x.dtype == torch.uint8 for x in train.images + held.images)
    # rows follow the character ids; names come from alphabets.csv (README: characterNN = first_id + NN - 1)
    assert train.class_names[0] == "Arcadian/character01"
    assert train.class_names[708] == "Alphabet_of_the_Magi/character01"
    assert held.class_names[0] == "Angelic/character01" and held.class_names[-1] == "ULOG/character26"
    # ink is bright: about 8% of the 105x105 pixels are ink, so the mean is low and the max is high
    pixels = torch.cat(train.images).float() / 255
    assert 0.05 < pixels.mean() < 0.2 and pixels.amax() == 1.0
    # corners are paper in nearly every drawing
    assert (torch.cat(train.images)[:, 0, 0, 0] == 0).float().mean() > 0.99


@needs_shared
def test_full_resolution_matches_npz_pixels():
    cfg = DataConfig(source="omniglot", root=str(SHARED), image_size=105, download=False)
    train, _ = build_datasets(cfg)
    raw = np.load(SHARED / "images_background.npz")["images"]
    assert np.array_equal(train.images[5].numpy()[:, 0], np.where(raw[5], 0, 255))
    assert np.array_equal(train.images[963].numpy()[:, 0], np.where(raw[963], 0, 255))


@needs_shared
def test_vinyals_split_sizes_and_rotations(vinyals, background):
    train, held = vinyals
    lines = {w: (SHARED / "splits" / "vinyals" / f"{w}.txt").read_text().split() for w in ("trainval", "test")}
    assert train.class_names == lines["trainval"] and held.class_names == lines["test"]
    assert (train.num_classes, held.num_classes) == (4800, 1692)
    classes = _by_name(train)
    # rotDDD is rot000 turned DDD/90 times; the turn happens before resizing, so a few pixels in a
    # million may differ by 1 from turning the resized image (float rounding in the resize)
    differing, total = 0, 0
    for name in train.class_names[::4]:
        base = classes[name]
        assert name.endswith("rot000")
        for k in (1, 2, 3):
            turned = classes[name.replace("rot000", f"rot{90 * k:03d}")].int()
            diff = (turned - torch.rot90(base, k, dims=(-2, -1)).int()).abs()
            assert diff.max() <= 1, name
            differing, total = differing + int((diff > 0).sum()), total + diff.numel()
    assert differing < 1e-5 * total
    # counter-clockwise as displayed: the same direction as np.rot90 and PIL's rotate(90)
    a = classes["Angelic/character01/rot000"].numpy()
    turned = classes["Angelic/character01/rot090"].numpy().astype(int)
    assert np.abs(turned - np.rot90(a, 1, axes=(-2, -1))).max() <= 1
    assert np.abs(turned - np.rot90(a, -1, axes=(-2, -1))).max() > 100
    # unrotated vinyals classes are the same pixels as the background/evaluation classes
    evaluation = _by_name(background[1])
    assert torch.equal(classes["Angelic/character01/rot000"], evaluation["Angelic/character01"])
    assert torch.equal(_by_name(held)["Gurmukhi/character42/rot000"], evaluation["Gurmukhi/character42"])


@pytest.mark.parametrize("split", ["background", "vinyals"])
@needs_shared
def test_train_and_heldout_disjoint_by_name_and_pixels(split, background, vinyals):
    train, held = background if split == "background" else vinyals
    assert not set(train.class_names) & set(held.class_names)
    # also by character: no character (any rotation) is on both sides
    char = lambda n: "/".join(n.split("/")[:2])  # noqa: E731
    assert not {char(n) for n in train.class_names} & {char(n) for n in held.class_names}
    digest = lambda x: hashlib.sha256(x.numpy().tobytes()).hexdigest()  # noqa: E731
    assert not {digest(x) for x in train.images} & {digest(x) for x in held.images}


@pytest.mark.parametrize("split", ["background", "vinyals"])
@needs_shared
def test_train_sampler_never_yields_heldout_classes(split, background, vinyals):
    train, held = background if split == "background" else vinyals
    held_names = set(held.class_names)
    held_images = {bytes(img.numpy()) for x in held.images for img in x}
    sampler = TaskSampler(train, k_shot=4, q_query=8, meta_batch=16)
    gen = torch.Generator().manual_seed(123)
    steps, seen = 200, set()
    for step in range(steps):
        batch = sampler.sample(gen)
        names = [train.class_names[c] for c in batch.classes.tolist()]
        assert not held_names & set(names)
        seen.update(names)
        if step % 40 == 0:  # the images really come from the named train class, and none is a held-out image
            for c, support, query in zip(batch.classes.tolist(), batch.support, batch.query, strict=True):
                rows = {bytes(img.numpy()) for img in train.images[c]}
                for img in from_model_space(torch.cat([support, query])):
                    assert bytes(img.numpy()) in rows and bytes(img.numpy()) not in held_images
    # and it does roam over the train classes: expected coverage is n (1 - (1 - 16/n)^steps)
    n = train.num_classes
    assert len(seen) > 0.9 * n * (1 - (1 - 16 / n) ** steps)


def test_packaged_split_files_match_shared_copy():
    if not (omniglot_dir() / "splits" / "vinyals").is_dir():
        pytest.skip(f"{SHARED} has no splits/vinyals folder to compare with (the project's shared copy has)")
    for name in ("train.txt", "val.txt", "test.txt", "trainval.txt", "LICENSE"):
        assert (PACKAGED / "vinyals" / name).read_bytes() == (SHARED / "splits" / "vinyals" / name).read_bytes()
    assert (PACKAGED / "omniglot_alphabets.csv").read_bytes() == (SHARED / "alphabets.csv").read_bytes()


def test_vinyals_split_parsing_without_data():
    trainval, test = vinyals_split("trainval"), vinyals_split("test")
    assert (len(trainval), len(test)) == (4800, 1692)
    assert trainval[1] == (965, 1, "Angelic/character01/rot090")  # Angelic's first id is 965
    train_chars = {c for c, _, _ in trainval}
    assert len(train_chars) == 1200 and not train_chars & {c for c, _, _ in test}
    with pytest.raises(ValueError):
        vinyals_split("nope")


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("METAGAN_DATA_DIR", str(tmp_path / "env"))
    assert data_dir(str(tmp_path / "given")) == tmp_path / "given"
    assert data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("METAGAN_DATA_DIR")
    assert data_dir(None) == Path.home() / ".cache" / "metagan"


def test_heldout_names_are_rejected_for_omniglot():
    with pytest.raises(ConfigError, match="data.split"):
        build_datasets(DataConfig(source="omniglot", heldout=("Angelic",)))


def test_missing_data_with_download_off_says_where_to_put_what(tmp_path):
    with pytest.raises(DataError) as info:
        build_datasets(DataConfig(source="omniglot", root=str(tmp_path), download=False))
    msg = str(info.value)
    for name in ("images_background", "images_evaluation"):
        assert str(tmp_path / "omniglot" / f"{name}.npz") in msg
        assert str(tmp_path / "omniglot" / f"{name}.zip") in msg
        assert f"brendenlake/omniglot/raw/master/python/{name}.zip" in msg
    assert "data.download" in msg and "METAGAN_DATA_DIR" in msg and "--data-dir" in msg


@needs_shared
def test_corrupted_npz_fails_checksum(tmp_path):
    target = tmp_path / "omniglot"
    target.mkdir()
    data = bytearray((SHARED / "images_background.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / "images_background.npz").write_bytes(bytes(data))
    (target / "images_evaluation.npz").symlink_to(SHARED / "images_evaluation.npz")
    with pytest.raises(DataError, match=r"images_background\.npz: sha256 is [0-9a-f]{64}, expected 8bf84167") as info:
        build_datasets(DataConfig(source="omniglot", root=str(tmp_path), download=False))
    assert "Delete it" in str(info.value)


@needs_shared
def test_background_val_holds_out_five_background_alphabets(background):
    from metagan.data.omniglot import VALIDATION_ALPHABETS
    train, held = build_datasets(_cfg(split="background-val"))
    alphabet = lambda name: name.split("/")[0]  # noqa: E731
    assert {alphabet(n) for n in held.class_names} == set(VALIDATION_ALPHABETS)
    assert not {alphabet(n) for n in train.class_names} & set(VALIDATION_ALPHABETS)
    assert set(train.class_names) | set(held.class_names) == set(background[0].class_names)
    assert train.num_classes + held.num_classes == 964
