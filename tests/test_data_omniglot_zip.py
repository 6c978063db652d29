"""Omniglot's original zip form, its checksums, and downloading it (from a loopback server only).

Small zips in the original layout are built from a few characters of the shared npz files; the
checksum tables are monkeypatched to their values, since the real ones describe the full zips.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metagan.config import DataConfig
from metagan.data import build_datasets, read_image
from metagan.data import omniglot_files as files
from metagan.errors import DataError

from conftest import OMNIGLOT, needs_omniglot

SHARED = OMNIGLOT or Path("/nonexistent")
pytestmark = needs_omniglot
# a few characters of each set; 709 is Alphabet_of_the_Magi/character01, 1160 Gurmukhi/character01
CHARS = {"images_background": [1, 2, 709], "images_evaluation": [965, 1160]}
FIRST = {"images_background": 1, "images_evaluation": 965}



@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Decode and resize on one thread: on a shared 2-core machine that is busy with other jobs,
    OpenMP threads spin-waiting on each other make these tensor-heavy tests 10x slower. Results do
    not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

def _png(drawing: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(drawing).convert(mode).save(buf, format="PNG")  # bool array -> black ink on white
    return buf.getvalue()


def _write_zip(path: Path, name: str, raw: np.ndarray, ids: list[int], mode: str, drawers: int = 20) -> None:
    """A zip in the original layout: name/<Alphabet>/characterNN/XXXX_YY.png, plus junk to skip."""
    alphabets = files.read_alphabets()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/", b"")
        z.writestr(f"__MACOSX/{name}/._0001_01.png", b"resource fork")
        for cid in ids:
            a = next(a for a in alphabets if a.first_id <= cid <= a.last_id)
            folder = f"{name}/{a.name}/character{cid - a.first_id + 1:02d}"
            for d in range(drawers):
                z.writestr(f"{folder}/{cid:04d}_{d + 1:02d}.png", _png(raw[cid - FIRST[name], d], mode))


@pytest.fixture(scope="module")
def raw():
    return {name: np.load(SHARED / f"{name}.npz")["images"] for name in files.SETS}


@pytest.fixture(scope="module")
def zips(raw, tmp_path_factory):
    """Small zips (mode "1" PNGs for background, "L" for evaluation, as the originals vary) and their hashes."""
    folder = tmp_path_factory.mktemp("zips")
    md5, content = {}, {}
    for name, mode in (("images_background", "1"), ("images_evaluation", "L")):
        _write_zip(folder / f"{name}.zip", name, raw[name], CHARS[name], mode)
        md5[name] = hashlib.md5((folder / f"{name}.zip").read_bytes()).hexdigest()
        content[name] = files.content_sha256(raw[name][np.array(CHARS[name]) - FIRST[name]])
    return folder, md5, content


@pytest.fixture(scope="module")
def npz_classes():
    """Class name -> images, from the npz path at 28x28 (the reference the zip path must equal)."""
    train, held = build_datasets(DataConfig(source="omniglot", root=str(SHARED), image_size=28, download=False))
    return dict(zip(train.class_names + held.class_names, train.images + held.images, strict=True))


@pytest.fixture
def patched(zips, monkeypatch):
    folder, md5, content = zips
    for name in files.SETS:
        monkeypatch.setitem(files.ZIP_MD5, name, md5[name])
        monkeypatch.setitem(files.CONTENT_SHA256, name, content[name])
    return folder


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"source": "omniglot", "root": str(root), "image_size": 28, "download": False, **kw})


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


def _assert_same_as_npz(train, held, npz_classes):
    assert train.class_names == ["Arcadian/character01", "Arcadian/character02", "Alphabet_of_the_Magi/character01"]
    assert held.class_names == ["Angelic/character01", "Gurmukhi/character01"]
    for ds in (train, held):
        for name, x in zip(ds.class_names, ds.images, strict=True):
            assert torch.equal(x, npz_classes[name]), name


def test_zip_form_gives_exactly_the_npz_tensors(patched, tmp_path, npz_classes):
    for name in files.SETS:
        _copy(patched / f"{name}.zip", tmp_path / "omniglot" / f"{name}.zip")
    _assert_same_as_npz(*build_datasets(_cfg(tmp_path)), npz_classes)


def test_unzipped_folders_directly_in_data_dir(patched, tmp_path, npz_classes):
    for name in files.SETS:
        with zipfile.ZipFile(patched / f"{name}.zip") as z:
            z.extractall(tmp_path)
    _assert_same_as_npz(*build_datasets(_cfg(tmp_path)), npz_classes)
    # read_image on an original-style PNG (black ink on white, invert=True) is the same pixels too
    png = tmp_path / "images_evaluation" / "Gurmukhi" / "character01" / "1160_07.png"
    assert torch.equal(read_image(png, 28, channels=1, invert=True), npz_classes["Gurmukhi/character01"][6])


def test_partial_data_cannot_build_the_vinyals_split(patched, tmp_path):
    for name in files.SETS:
        _copy(patched / f"{name}.zip", tmp_path / "omniglot" / f"{name}.zip")
    with pytest.raises(DataError, match="do not contain"):
        build_datasets(_cfg(tmp_path, split="vinyals"))


def test_zip_with_wrong_md5_is_rejected(zips, tmp_path):
    folder, _, _ = zips  # real md5 table: the small zip is not the published one
    for name in files.SETS:
        _copy(folder / f"{name}.zip", tmp_path / "omniglot" / f"{name}.zip")
    with pytest.raises(DataError, match=r"images_background\.zip: md5 is [0-9a-f]{32}, expected 68d2efa1") as info:
        build_datasets(_cfg(tmp_path))
    assert "Delete it" in str(info.value)


def test_zip_with_wrong_pixels_fails_content_hash(patched, raw, tmp_path, monkeypatch):
    bad = raw["images_background"].copy()
    bad[0, 0, 50, 50] = ~bad[0, 0, 50, 50]  # one pixel
    path = _copy(patched / "images_evaluation.zip", tmp_path / "omniglot" / "images_evaluation.zip")
    path = path.with_name("images_background.zip")
    _write_zip(path, "images_background", bad, CHARS["images_background"], "1")
    monkeypatch.setitem(files.ZIP_MD5, "images_background", hashlib.md5(path.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="content sha256"):
        build_datasets(_cfg(tmp_path))


def test_zip_missing_a_drawing_names_the_character(raw, tmp_path, monkeypatch):
    (tmp_path / "omniglot").mkdir()
    path = tmp_path / "omniglot" / "images_background.zip"
    _write_zip(path, "images_background", raw["images_background"], [2], "1", drawers=19)
    (tmp_path / "omniglot" / "images_evaluation.npz").symlink_to(SHARED / "images_evaluation.npz")
    monkeypatch.setitem(files.ZIP_MD5, "images_background", hashlib.md5(path.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="character 0002 has only 19 of 20"):
        build_datasets(_cfg(tmp_path))


# --- downloading, from 127.0.0.1 only -------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def serve(monkeypatch):
    """serve(folder) -> base URL of a loopback HTTP server for ``folder``; METAGAN_OMNIGLOT_URL points at it."""
    for var in ("no_proxy", "NO_PROXY"):  # never send loopback requests through a proxy
        monkeypatch.setenv(var, "*")
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("METAGAN_OMNIGLOT_URL", url)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_fetches_verifies_and_loads(patched, serve, tmp_path, npz_classes):
    serve(patched)
    train, held = build_datasets(_cfg(tmp_path / "data", download=True))
    _assert_same_as_npz(train, held, npz_classes)
    kept = sorted(p.relative_to(tmp_path / "data").as_posix() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert kept == ["omniglot/images_background.zip", "omniglot/images_evaluation.zip"]  # no temp files left
    for name in files.SETS:
        assert (tmp_path / "data" / "omniglot" / f"{name}.zip").read_bytes() == (patched / f"{name}.zip").read_bytes()


def test_download_of_wrong_bytes_keeps_nothing(patched, serve, tmp_path):
    wrong = tmp_path / "server"
    wrong.mkdir()
    for name in files.SETS:
        (wrong / f"{name}.zip").write_bytes(b"<html>captive portal</html>")
    serve(wrong)
    with pytest.raises(DataError, match=r"md5 is [0-9a-f]{32}, expected .*Nothing was kept"):
        build_datasets(_cfg(tmp_path / "data", download=True))
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", ["closed port", "404"])
def test_offline_download_says_which_files_to_put_where(where, serve, tmp_path, monkeypatch):
    if where == "404":
        (tmp_path / "empty").mkdir()
        base = serve(tmp_path / "empty")
    else:
        monkeypatch.setenv("no_proxy", "*")
        base = f"http://127.0.0.1:{_closed_port()}"
        monkeypatch.setenv("METAGAN_OMNIGLOT_URL", base)
    with pytest.raises(DataError, match="Downloading .* failed") as info:
        build_datasets(_cfg(tmp_path / "data", download=True))
    msg = str(info.value)
    for name in files.SETS:
        assert str(tmp_path / "data" / "omniglot" / f"{name}.npz") in msg
        assert str(tmp_path / "data" / "omniglot" / f"{name}.zip") in msg
        assert f"{base}/{name}.zip" in msg
    assert "METAGAN_DATA_DIR" in msg and "--data-dir" in msg
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def test_content_hashes_are_those_of_the_npz_pixels(raw):
    # the zips are checked against these; the npz files hold exactly the zips' pixels
    for name in files.SETS:
        assert files.content_sha256(raw[name]) == files.CONTENT_SHA256[name]
    # the hash is of the pixel values, not of how numpy happens to store True (the npz uses byte 255)
    assert files.content_sha256(raw["images_background"][:2]) == files.content_sha256(~~raw["images_background"][:2])
