"""Networks: shapes, the published layer specifications, initialisation, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from disentkit.errors import UnknownNameError
from disentkit.models import ARCHITECTURES, build_model


def _seeded(arch, c, d, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch, c, d)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("channels", [1, 3])
def test_encode_decode_shapes(arch, channels):
    model = _seeded(arch, channels, 7)
    x = torch.rand(5, channels, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 7)
    logits = model.decode(torch.randn(5, 7))
    assert logits.shape == (5, channels, 64, 64)
    assert model(x).shape == x.shape


def _layers(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


def test_locatello_matches_the_published_spec():
    model = _seeded("locatello", 3, 10)
    convs = _layers(model.encoder, nn.Conv2d)
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert [m.out_features for m in _layers(model.encoder, nn.Linear)] == [256]
    assert [m.out_features for m in _layers(model.decoder_fc, nn.Linear)] == [256, 1024]
    deconvs = _layers(model.decoder, nn.ConvTranspose2d)
    assert [c.out_channels for c in deconvs] == [64, 32, 32, 3]
    assert not isinstance(list(model.decoder)[-1], nn.ReLU)  # logits, no activation


def test_paper_matches_the_published_spec():
    model = _seeded("paper", 1, 10)
    assert [c.out_channels for c in _layers(model.encoder, nn.Conv2d)] == [32, 64, 128]
    assert len(_layers(model.encoder, nn.BatchNorm2d)) == 3
    assert [ln.normalized_shape for ln in _layers(model.encoder, nn.LayerNorm)] == [(8192,)]
    assert model.fc_mu.in_features == 8192 and model.decoder_fc[0].out_features == 8192
    assert [c.out_channels for c in _layers(model.decoder, nn.ConvTranspose2d)] == [64, 32, 1]
    slopes = {m.negative_slope for m in _layers(model, nn.LeakyReLU)}
    assert slopes == {0.02} and len(_layers(model.decoder, nn.LeakyReLU)) == 3
    # Xavier-uniform weights, bias 0.01 inside encoder/decoder; defaults for the heads
    for part in (model.encoder, model.decoder_fc, model.decoder):
        for layer in _layers(part, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            assert torch.all(layer.bias == 0.01)
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            assert layer.weight.abs().max() <= bound
    assert not torch.all(model.fc_mu.bias == 0.01)


def test_paper_logits_equal_the_published_tanh_output():
    model = _seeded("paper", 3, 4)
    z = torch.randn(3, 4)
    a = model.decoder(model.decoder_fc(z).view(-1, 128, 8, 8))
    published = (torch.tanh(a) + 1) / 2
    torch.testing.assert_close(torch.sigmoid(model.decode(z)), published, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_initialisation_is_seeded(arch):
    a, b, c = _seeded(arch, 1, 5, 0), _seeded(arch, 1, 5, 0), _seeded(arch, 1, 5, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_wrong_input_shape_says_what_was_expected(arch):
    model = _seeded(arch, 1, 5)
    with pytest.raises(ValueError, match=r"expects images \[n, 1, 64, 64\], found \[2, 3, 64, 64\]"):
        model.encode(torch.rand(2, 3, 64, 64))


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(UnknownNameError, match="locatello, paper"):
        build_model("resnet", 1, 10)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        build_model("locatello", 1, 0)
