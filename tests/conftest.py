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
                "images_evaluation.npz (see the README's Quick start)")
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


@pytest.fixture
def metasgd_closed_form_check():
    """check(problem, sched, meta_g, meta_d, task): first-order Meta-SGD with per-tensor rates (made unequal)
    takes its meta-gradient in closed form (MetaSGD.task_grads); it must equal differentiating through the
    unrolled inner loop (MAML.task_grads, the same learner), for every meta-parameter, and reach the rates."""
    import torch

    from metagan.meta import MAML, MetaSGD

    def check(problem, sched, meta_g, meta_d, task, rtol=1e-4, atol=1e-6):
        assert getattr(problem, "records_inner_steps", False)
        learner = MetaSGD(problem, sched, 0.01, 0.01, first_order=True, per_tensor=True)
        meta = learner.init_meta(meta_g, meta_d)
        for i, group in enumerate(("lr_g", "lr_d")):
            meta[group] = {k: v * (1.0 + 0.5 * ((j + i) % 3)) for j, (k, v) in enumerate(meta[group].items())}
        fast, fast_aux = learner.task_grads(meta, task)
        unrolled, aux = MAML.task_grads(learner, meta, task)
        assert fast.keys() == unrolled.keys() and set(fast_aux) == set(aux)
        for group in unrolled:
            for k, v in unrolled[group].items():
                torch.testing.assert_close(fast[group][k], v, rtol=rtol, atol=atol, msg=f"{group}.{k}")
        assert any(float(v.abs().max()) > 0 for v in fast["lr_g"].values())
        assert any(float(v.abs().max()) > 0 for v in fast["lr_d"].values())
    return check
