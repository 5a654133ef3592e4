"""The network of Dapueto et al. 2024 (public code, Apache-2.0), rebuilt from its description.

Encoder: 4x4 stride-2 convolutions with 32, 64, 128 filters (64 -> 32 -> 16 -> 8), each followed
by BatchNorm and LeakyReLU(0.02); LayerNorm over the 128*8*8 = 8192 flattened features; two
linear heads for the mean and the log-variance.
Decoder: linear to 8192 + LeakyReLU(0.02), then 4x4 stride-2 transposed convolutions
128 -> 64 -> 32 -> C, each followed by LeakyReLU(0.02), the last one included.

The published decoder outputs pixels ``(tanh(a) + 1) / 2``. Since ``(tanh(a) + 1) / 2 =
sigmoid(2a)`` exactly, we return the logits ``2a``: the same model, but the Bernoulli loss can then
use the stable log-sigmoid form instead of the log of a saturating probability.

Initialisation as published: Xavier-uniform weights and bias 0.01 for the convolutions and linear
layers inside the encoder and decoder; the two heads keep PyTorch's defaults.
"""

from __future__ import annotations

import torch
from torch import nn

from disentkit.models.base import VAENetwork

SLOPE = 0.02


def _init_xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.constant_(module.bias, 0.01)


class PaperVAE(VAENetwork):
    arch = "paper"

    def __init__(self, in_channels: int, latent_dim: int):
        super().__init__(in_channels, latent_dim)
        c = self.in_channels
        features = 128 * 8 * 8

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(SLOPE)]

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(SLOPE)]

        self.encoder = nn.Sequential(
            *down(c, 32), *down(32, 64), *down(64, 128), nn.Flatten(), nn.LayerNorm(features)
        )
        self.fc_mu = nn.Linear(features, self.latent_dim)
        self.fc_logvar = nn.Linear(features, self.latent_dim)
        self.decoder_fc = nn.Sequential(nn.Linear(self.latent_dim, features), nn.LeakyReLU(SLOPE))
        self.decoder = nn.Sequential(*up(128, 64), *up(64, 32), *up(32, c))
        self.encoder.apply(_init_xavier)
        self.decoder_fc.apply(_init_xavier)
        self.decoder.apply(_init_xavier)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        a = self.decoder(self.decoder_fc(z).view(-1, 128, 8, 8))
        return 2.0 * a  # sigmoid(2a) == (tanh(a) + 1) / 2, the published output
