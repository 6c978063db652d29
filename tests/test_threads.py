"""The intra-op thread choice: explicit settings win, small models run on one thread, the caller's count returns."""
import pytest
import torch

from metagan.config import apply_overrides, get_preset
from metagan.threads import ENV, PARALLEL_MIN_SAMPLE_FLOPS, auto_threads, chosen_threads, model_threads
from metagan.train import sample_flops


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_size_rule_splits_the_shipped_models():
    small, large = get_preset("digits-demo"), get_preset("omniglot-metasgd")
    assert sample_flops(small.model, (1, 16, 16)) < PARALLEL_MIN_SAMPLE_FLOPS <= sample_flops(large.model, (1, 28, 28))
    assert auto_threads(small) == 1
    assert auto_threads(large) is None  # torch's default: one per core
    assert auto_threads(apply_overrides(small, ["train.device=cuda"])) is None


def test_explicit_settings_win(no_env, monkeypatch):
    small = get_preset("digits-demo")
    assert chosen_threads(small) == (1, "model size")
    assert chosen_threads(apply_overrides(small, ["train.threads=3"])) == (3, "train.threads")
    monkeypatch.setenv(ENV, "2")
    assert chosen_threads(small) == (None, ENV)
    assert chosen_threads(apply_overrides(small, ["train.threads=3"])) == (3, "train.threads")


def test_model_threads_sets_and_restores(no_env, restore_threads):
    torch.set_num_threads(2)
    with model_threads(get_preset("digits-demo")) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with model_threads(apply_overrides(get_preset("digits-demo"), ["train.threads=3"])) as n:
        assert n == 3 == torch.get_num_threads()
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), model_threads(get_preset("digits-demo")):
        raise RuntimeError("a failed run")
    assert torch.get_num_threads() == 2


def test_environment_leaves_torch_alone(monkeypatch, restore_threads):
    monkeypatch.setenv(ENV, "2")
    torch.set_num_threads(2)
    with model_threads(get_preset("digits-demo")) as n:
        assert n == 2


def test_model_threads_limits_numpy_blas_too(no_env):
    from threadpoolctl import threadpool_info

    def blas():
        return {d["filepath"]: d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}
    before = blas()
    assert before  # NumPy's BLAS is loaded (torch imports NumPy), so the check below checks something
    with model_threads(get_preset("digits-demo")):
        assert set(blas().values()) <= {1}
    assert blas() == before
