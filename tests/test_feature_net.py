"""The shipped feature network: intact, and far better than chance on held-out Omniglot classes."""
import shutil

import pytest
import torch

from metagan.errors import CheckpointError
from metagan.metrics.features import ASSET, few_shot_accuracy, load_feature_net

from conftest import omniglot_dir


def test_shipped_network_loads_and_embeds():
    net = load_feature_net()
    with torch.no_grad():
        assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 64)
        assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 64)  # other sizes are resized to 28


def test_damaged_network_file_is_refused(tmp_path):
    shutil.copy(ASSET, tmp_path / ASSET.name)
    shutil.copy(ASSET.with_suffix(".json"), tmp_path / ASSET.with_suffix(".json").name)
    data = bytearray((tmp_path / ASSET.name).read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / ASSET.name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_feature_net(tmp_path / ASSET.name)


def test_beats_chance_by_a_wide_margin_on_evaluation_classes():
    omniglot = omniglot_dir()
    from metagan.config import DataConfig
    from metagan.data import build_datasets
    _, evaluation = build_datasets(DataConfig(source="omniglot", image_size=28, root=str(omniglot)))
    acc, ci = few_shot_accuracy(load_feature_net(), evaluation.images, n_way=20, k=1, episodes=30, seed=7)
    assert acc - ci > 0.6  # chance is 0.05; the card reports 0.85 over 600 episodes
