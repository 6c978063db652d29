"""The Gradio page over metagan.serve.handler (needs the `serve` extra: `pip install -e ".[serve]"`).

    metagan serve [--checkpoint pretrained:omniglot-metasgd | RUN] [--host 127.0.0.1] [--port 7860]

Offline by construction: analytics off, system fonts (Gradio's default theme fetches Google Fonts), no server-side
rendering, no share link. Requests run on Gradio's queue (worker threads, CONCURRENCY at a time, with a progress
bar); each writes its zip into its own folder, removed after RESULT_TTL_S and when the server stops. Gradio's
own copies of uploads and outputs are deleted by its cache policy (delete_cache).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads this at import

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import MetaganError  # noqa: E402
from .handler import (MAX_FILE_MB, MAX_PAGE_NUM, MAX_PAGE_SEED, MAX_PAGE_SELECT, MAX_PAGE_STEPS,  # noqa: E402
                      MAX_UPLOADS, POLARITIES, ModelCache, generate)

CONCURRENCY = 2  # requests handled at once (they adapt one at a time: handler._TORCH_LOCK); more queue
QUEUE_SIZE = 16  # requests waiting; more are refused with a message
RESULT_TTL_S = 3600  # a request's zip is kept this long (it is downloaded from Gradio's copy)
DISPLAY_SCALE = 4  # 28x28 images shown at 112x112, nearest-neighbour, so strokes stay sharp
OFFLINE_THEME = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


class ResultFolders:
    """One new folder per request under a server-wide temporary folder; old ones removed at each request."""

    def __init__(self, ttl_s: float = RESULT_TTL_S):
        self._root = tempfile.TemporaryDirectory(prefix="metagan-serve-")
        self.root, self.ttl_s = Path(self._root.name), ttl_s
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            now = time.time()
            for old in self.root.iterdir():
                if now - old.stat().st_mtime > self.ttl_s:
                    shutil.rmtree(old, ignore_errors=True)
            folder = self.root / uuid.uuid4().hex
            folder.mkdir()
            return folder

    def cleanup(self) -> None:
        self._root.cleanup()


def _enlarge(img: np.ndarray) -> np.ndarray:
    return img.repeat(DISPLAY_SCALE, 0).repeat(DISPLAY_SCALE, 1)


def build_app(checkpoint: str | None = None) -> gr.Blocks:
    """The page: uploads and settings on the left, supports and samples side by side, the figures and the zip."""
    models = ModelCache(checkpoint)
    models.get(models.default)  # a bad --checkpoint fails now, not at the first request; and the first is quicker
    folders = ResultFolders()

    def run(files, model_name, num, steps, seed, select, polarity, progress=gr.Progress()):
        try:
            r = generate(files, model_name, num, steps, seed, select, polarity, models=models,
                         out_dir=folders.new(), progress=lambda f, desc: progress(f, desc=desc))
        except MetaganError as e:  # the visitor's mistake: the message says what to change
            raise gr.Error(str(e), title="Cannot generate", print_exception=False) from None
        except Exception as e:  # a bug: logged on the server, a short line on the page, the server keeps serving
            traceback.print_exc()
            raise gr.Error(f"internal error ({type(e).__name__}); the server log has the details",
                           title="Cannot generate") from None
        return ([(_enlarge(x), f"support {i}") for i, x in enumerate(r.support)],
                [(_enlarge(x), f"sample {i}") for i, x in enumerate(r.samples)], r.figures, str(r.zip_path))

    with gr.Blocks(title="metagan: few-shot generation", delete_cache=(600, RESULT_TTL_S)) as app:
        app.folders = folders  # for the caller to clean up
        gr.Markdown("## metagan: few-shot generation\nUpload a few drawings of one new character (dark ink on "
                    "light paper for the Omniglot models), pick a model, and generate more of it: the model "
                    "adapts to your images for the given number of steps, then samples.")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label=f"support images (1 to {MAX_UPLOADS}, up to {MAX_FILE_MB} MB each)",
                                file_count="multiple", elem_id="support-files")
                model = gr.Dropdown(models.names, value=models.default, label="model", elem_id="model")
                num = gr.Slider(1, MAX_PAGE_NUM, value=16, step=1, label="samples", elem_id="num")
                steps = gr.Slider(0, MAX_PAGE_STEPS, value=models.get(models.default).offered_steps, step=1,
                                  label="adaptation steps", elem_id="steps")
                seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_PAGE_SEED, label="seed", elem_id="seed")
                with gr.Accordion("more", open=False):
                    select = gr.Slider(1, MAX_PAGE_SELECT, value=1, step=0.5, label="select: draw R x samples, keep "
                                       "those the adapted discriminator rates most real (1: keep all)")
                    polarity = gr.Radio(list(POLARITIES), value="auto", label="polarity of the uploads")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=1):
                shown_support = gr.Gallery(label="supports", columns=3, height="auto", format="png",
                                           elem_id="supports", object_fit="contain")
            with gr.Column(scale=2):
                shown_samples = gr.Gallery(label="samples", columns=6, height="auto", format="png",
                                           elem_id="samples", object_fit="contain")
        with gr.Row():
            text = gr.Markdown(elem_id="figures")
            download = gr.File(label="download the samples (zip of PNGs and grid.png)", elem_id="download")
        model.change(lambda name: gr.update(value=models.get(name).offered_steps), model, steps)
        button.click(run, [files, model, num, steps, seed, select, polarity],
                     [shown_support, shown_samples, text, download], concurrency_limit=CONCURRENCY)
    app.queue(max_size=QUEUE_SIZE)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> str:
    """Start the server; returns its URL. block=False returns at once (the tests); app.close() stops it."""
    _, url, _ = app.launch(server_name=host, server_port=port, max_file_size=f"{MAX_FILE_MB}mb", share=False,
                           prevent_thread_lock=True, quiet=True, ssr_mode=False, pwa=False, mcp_server=False,
                           enable_monitoring=False, show_error=False, theme=gr.themes.Default(**OFFLINE_THEME))
    if block:
        try:
            app.block_thread()
        finally:
            app.folders.cleanup()
    return url


def serve(checkpoint: str | None = None, host: str = "127.0.0.1", port: int = 7860) -> None:
    """`metagan serve`: build the page and serve it until interrupted."""
    app = build_app(checkpoint)
    print(f"metagan serve: http://{host}:{port} (Ctrl+C to stop)", flush=True)
    launch(app, host, port)
