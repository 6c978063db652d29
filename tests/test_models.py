"""Model families: shapes at the supported resolutions, no running statistics, per-sample independence."""
import dataclasses

import pytest
import torch

from metagan.config import ModelConfig
from metagan.errors import ConfigError
from metagan.models import build_models


@pytest.mark.parametrize("size", [8, 16, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_shapes(size, channels):
    gen, disc = build_models(ModelConfig(z_dim=8, g_width=8, d_width=8, norm="group"), (channels, size, size))
    x = gen(torch.randn(5, 8))
    assert x.shape == (5, channels, size, size) and x.abs().max() <= 1
    assert disc(x).shape == (5,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in [*gen.modules(), *disc.modules()])
    assert len(list(gen.buffers())) == 0 and len(list(disc.buffers())) == 0


def test_discriminator_treats_samples_independently():
    # WGAN-GP's per-sample penalty relies on it: sample i's logit must not depend on sample j.
    _, disc = build_models(ModelConfig(d_width=8), (1, 16, 16))
    x = torch.randn(4, 1, 16, 16)
    y = x.clone()
    y[1:] = torch.randn(3, 1, 16, 16)
    assert torch.allclose(disc(x)[0], disc(y)[0])


def test_mlp_pair_for_vectors():
    gen, disc = build_models(ModelConfig(kind="mlp", z_dim=4, hidden=16), (7,))
    assert gen(torch.randn(3, 4)).shape == (3, 7) and disc(torch.randn(3, 7)).shape == (3,)


def test_bad_model_configs():
    with pytest.raises(ConfigError, match="mlp for vectors"):
        build_models(ModelConfig(), (7,))
    with pytest.raises(ConfigError, match="model.kind=conv"):
        build_models(dataclasses.replace(ModelConfig(kind="mlp"), condition="support"), (1, 8, 8))
