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
    # disentanglement_lib conv_encoder: kernels 4, 4, 2, 2, stride 2, TF "same" padding
    assert [c.kernel_size for c in convs] == [(4, 4), (4, 4), (2, 2), (2, 2)]
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (0, 0), (0, 0)]
    assert all(c.stride == (2, 2) for c in convs)
    assert [m.out_features for m in _layers(model.encoder, nn.Linear)] == [256]
    assert [m.out_features for m in _layers(model.decoder_fc, nn.Linear)] == [256, 1024]
    deconvs = _layers(model.decoder, nn.ConvTranspose2d)
    assert [c.out_channels for c in deconvs] == [64, 32, 32, 3]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in deconvs)
    assert not isinstance(list(model.decoder)[-1], nn.ReLU)  # logits, no activation
    # TF 1 tf.layers defaults: Glorot-uniform kernels, zero biases (heads included)
    for layer in _layers(model, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        assert torch.all(layer.bias == 0)
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound


def _reference_parameter_count(c: int, d: int) -> int:
    """Parameters of disentanglement_lib's conv_encoder + deconv_decoder, counted by hand from
    the TF layer shapes (kernel k x k x in x out + out biases; dense in x out + out):

    e1 conv 4x4x c x32 + 32          = 512c + 32
    e2 conv 4x4x32x32 + 32           = 16,416
    e3 conv 2x2x32x64 + 64           = 8,256
    e4 conv 2x2x64x64 + 64           = 16,448
    e5 dense 1024x256 + 256          = 262,400
    means, log_var dense 256 x d + d = 2 x 257d
    d1 dense d x 256 + 256           = 256d + 256
    d2 dense 256x1024 + 1024         = 263,168
    d3 deconv 4x4x64x64 + 64         = 65,600
    d4 deconv 4x4x64x32 + 32         = 32,800
    d5 deconv 4x4x32x32 + 32         = 16,416
    d6 deconv 4x4x32x c + c          = 513c
    total                            = 1025c + 770d + 681,792
    """
    return 1025 * c + 770 * d + 681_792


@pytest.mark.parametrize("channels,latent", [(3, 10), (1, 10), (3, 6)])
def test_locatello_parameter_count_equals_the_reference(channels, latent):
    model = _seeded("locatello", channels, latent)
    count = sum(p.numel() for p in model.parameters())
    assert count == _reference_parameter_count(channels, latent)
    assert _reference_parameter_count(3, 10) == 692_567  # the 3-channel, 10-latent network


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
