"""`metagan serve`: the handler without a browser, then the page in headless Chromium through Playwright.

The end-to-end test uploads five Omniglot evaluation drawings to the shipped pretrained:omniglot-metasgd, waits
for the samples and, with METAGAN_SCREENSHOT=docs/serve.png, writes the README's screenshot there.
Every request not to the local server is blocked, so the page is checked to work offline.
"""
from __future__ import annotations

import os
import shutil
import socket
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import omniglot_dir
from metagan.cli import build_parser, main
from metagan.errors import ConfigError, DataError
from metagan.serve import ModelCache, generate, pixel_distances
from metagan.serve.handler import MAX_UPLOADS

MODEL = "pretrained:omniglot-metasgd"


@pytest.fixture(scope="module")
def models():
    return ModelCache()


@pytest.fixture(scope="module")
def drawings(tmp_path_factory):
    """Five drawings of one Omniglot evaluation character, as PNGs of dark ink on white (Omniglot's files)."""
    data = np.load(omniglot_dir() / "images_evaluation.npz")
    folder = tmp_path_factory.mktemp("drawings")
    paths = []
    for i in range(5):
        paths.append(folder / f"drawing-{i}.png")
        Image.fromarray(data["images"][3, i].astype(np.uint8) * 255).save(paths[-1])
    return paths


def _gen(models, files, tmp_path, num=6, steps=2, seed=0, **kw):
    out = tmp_path / f"out-{seed}-{num}"
    out.mkdir(exist_ok=True)
    return generate(files, kw.pop("model", MODEL), num, steps, seed, models=models, out_dir=out, **kw)


def test_generate_gives_samples_figures_and_a_zip(models, drawings, tmp_path):
    seen = []
    r = _gen(models, drawings, tmp_path, num=6, progress=lambda f, desc: seen.append(f))
    assert len(r.support) == 5 and len(r.samples) == 6
    assert all(x.shape == (28, 28) and x.dtype == np.uint8 for x in r.support + r.samples)
    # Omniglot's polarity: mostly white paper, as uploaded
    assert np.mean([x.mean() for x in r.support]) > 128 and np.mean([x.mean() for x in r.samples]) > 128
    with zipfile.ZipFile(r.zip_path) as z:
        names = sorted(z.namelist())
        assert names == ["grid.png"] + [f"sample-{i:04d}.png" for i in range(6)]
        first = np.asarray(Image.open(z.open("sample-0000.png")))
    assert np.array_equal(first, r.samples[0])
    assert "Diversity" in r.figures and "Copy distance" in r.figures and "pixel distance" in r.figures
    assert seen == sorted(seen) and 0 < seen[0] and seen[-1] < 1
    again = _gen(models, drawings, tmp_path, num=6, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(r.samples, again.samples))  # the seed decides


def test_pixel_distances_are_mean_absolute_differences():
    import torch
    a = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
    b = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    b[0, 0, 0, 0] = 0
    assert torch.allclose(pixel_distances(a, b), torch.tensor([[0.75], [0.75]]))


def test_one_support_image_is_enough_and_says_so(models, drawings, tmp_path):
    r = _gen(models, drawings[:1], tmp_path, num=3)
    assert len(r.samples) == 3 and "fewer than the K = 5" in r.figures and "needs at least 2" in r.figures


@pytest.mark.parametrize("case, expected", [
    ("none", "upload at least one image"),
    ("text", "not an image"),
    ("huge", "megapixels"),
    ("many", f"at most {MAX_UPLOADS} support images"),
    ("blank", "blank"),
    ("inverted", "opposite polarity"),
])
def test_bad_uploads_get_a_clear_message(models, drawings, tmp_path, case, expected):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 6250), 1).save(huge)  # 50 megapixels, a small file
    blank = tmp_path / "blank.png"
    Image.new("L", (28, 28), 255).save(blank)
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - np.asarray(Image.open(drawings[0]))).save(inverted)
    files = {"none": [], "text": [text], "huge": [huge], "many": drawings * 40, "blank": [blank],
             "inverted": [inverted]}[case]
    with pytest.raises(DataError, match=expected) as e:
        _gen(models, files, tmp_path)
    assert str(tmp_path) not in str(e.value)  # uploads named as the visitor knows them, not by temporary path


@pytest.mark.parametrize("field, value", [("num", 0), ("num", 65), ("steps", -1), ("steps", 1.5), ("seed", -1),
                                          ("select", 0.5), ("polarity", "sideways"), ("model", "/etc/passwd")])
def test_bad_settings_get_a_clear_message(models, drawings, tmp_path, field, value):
    with pytest.raises(ConfigError):
        _gen(models, drawings, tmp_path, **{field: value})


def test_two_requests_at_once_each_get_their_own_result(models, drawings, tmp_path):
    """Exactly what each would get alone (torch.func's global state once mixed two adaptations in threads)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone = [_gen(models, drawings, tmp_path / "a", seed=s) for s in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda s: _gen(models, drawings, tmp_path / "b", seed=s), [1, 2]))
    for a, b in zip(alone, both):
        assert all(np.array_equal(x, y) for x, y in zip(a.samples, b.samples))
    assert both[0].zip_path != both[1].zip_path
    assert not all(np.array_equal(x, y) for x, y in zip(both[0].samples, both[1].samples))


def test_models_load_once(models):
    assert models.get(MODEL) is models.get(MODEL)


def test_serve_options_have_help_and_a_missing_gradio_is_one_line(monkeypatch, capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    options = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert {a.dest for a in options} == {"checkpoint", "host", "port"}
    assert all(a.help for a in options)
    assert sub.parse_args([]).host == "127.0.0.1"
    import sys
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    monkeypatch.delitem(sys.modules, "metagan.serve.app", raising=False)
    assert main(["serve"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install -e ".[serve]"' in err


def test_serve_refuses_a_missing_checkpoint_before_it_starts(tmp_path, capsys):
    pytest.importorskip("gradio", reason="metagan serve needs gradio (pip install -e \".[test]\")")
    assert main(["serve", "--checkpoint", str(tmp_path / "nope"), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint at") and err.count("\n") == 1


# --- the page in a real browser ---------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser_missing() -> str | None:
    try:
        import gradio  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"the page test needs gradio and playwright (pip install -e \".[test]\"): {e}"
    if not shutil.which("chromium"):
        return "the page test needs a system Chromium on PATH (Debian: apt-get install chromium)"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_page_adapts_a_shipped_model_in_a_browser_offline(drawings, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from metagan.serve.app import build_app, launch
    app = build_app()
    url = launch(app, "127.0.0.1", _free_port(), block=False)
    blocked = []

    def only_local(route):
        if route.request.url.startswith(url.rstrip("/")):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", only_local)
            page.goto(url)
            # the page opens on the recommended omniglot-cvae, trained jointly: the steps slider starts at 0
            expect(page.locator("#steps input[type=number]")).to_have_value("0", timeout=20_000)
            upload = page.locator("#support-files input[type=file]")
            upload.set_input_files([str(not_image)])  # a bad upload: a message on the page, then it still serves
            page.locator("#generate").click()
            expect(page.get_by_text("not an image").first).to_be_visible(timeout=20_000)
            page.locator(".toast-close").first.click()
            page.locator("#support-files button[aria-label='Clear']").first.click()
            upload.set_input_files([str(d) for d in drawings])
            page.locator("#generate").click()
            samples = page.locator("#samples img")
            expect(samples).to_have_count(16, timeout=25_000)
            expect(page.locator("#supports img")).to_have_count(5)
            expect(page.locator("#figures")).to_contain_text("Diversity")
            expect(page.locator("#download")).to_contain_text(".zip")
            # every sample image decodes at 112 px (4x 28); waits for the browser to finish loading them
            page.wait_for_function("() => [...document.querySelectorAll('#samples img')].every("
                                   "i => i.complete && i.naturalWidth === 112)", timeout=20_000)
            shot = Path(os.environ.get("METAGAN_SCREENSHOT") or tmp_path / "serve.png")
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        app.close()
        app.folders.cleanup()
    assert shot.stat().st_size > 10_000
    assert not blocked, f"the page asked for assets from the internet: {blocked}"


def test_the_page_starts_a_jointly_trained_model_at_0_steps_and_the_others_at_their_own():
    from metagan.adapt import load
    assert load("pretrained:omniglot-cvae").offered_steps == 0
    assert load("pretrained:omniglot-metasgd").offered_steps == 2
