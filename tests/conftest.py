"""Shared test helpers: where the tests find Omniglot.

Tests that need the real Omniglot data read it from the folder named by ``METAGAN_DATA_DIR`` (``.ci/run`` sets
it to ``../shared/data/omniglot``); without it they skip and say why. CI counts skips and fails on any.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

DATA_ENV = "METAGAN_DATA_DIR"


def _omniglot_folder() -> Path | None:
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


# Read once at import: some tests change METAGAN_DATA_DIR with monkeypatch to test its resolution.
OMNIGLOT = _omniglot_folder()


def omniglot_missing() -> str | None:
    """Why the Omniglot tests cannot run here, or None when the npz files are there."""
    if OMNIGLOT is None:
        return (f"Omniglot not found: set {DATA_ENV} to a folder holding images_background.npz and "
                "images_evaluation.npz (see the README's Tests section)")
    for name in ("images_background.npz", "images_evaluation.npz"):
        if not (OMNIGLOT / name).is_file():
            return f"Omniglot not found: {DATA_ENV}={OMNIGLOT} holds no {name}"
    return None


def omniglot_dir() -> Path:
    """The Omniglot folder, or skip the calling test with the reason."""
    reason = omniglot_missing()
    if reason:
        pytest.skip(reason)
    assert OMNIGLOT is not None
    return OMNIGLOT


needs_omniglot = pytest.mark.skipif(omniglot_missing() is not None, reason=str(omniglot_missing()))


@pytest.fixture(autouse=True)
def _sigint_left_as_found():
    """Fail a test that leaves the runner's SIGINT handler changed (and put it back): every later test's child
    processes would inherit an ignored SIGINT, and Ctrl-C would no longer stop them. (A runner started as a
    background job of a non-interactive shell has SIGINT ignored from the start: that is no test's doing.)"""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test left SIGINT's handler {after!r} (it was {before!r}): restore it")
