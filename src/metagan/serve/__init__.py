"""`metagan serve`: a web page for few-shot generation.

handler.py holds what the page does as plain functions (testable without a browser or Gradio); app.py is the
Gradio page over them, imported only when serving (the optional `serve` extra: `pip install -e ".[serve]"`).
"""
from .handler import MAX_UPLOADS, ModelCache, Result, check_uploads, figures, generate, pixel_distances

__all__ = ["MAX_UPLOADS", "ModelCache", "Result", "check_uploads", "figures", "generate", "pixel_distances"]
