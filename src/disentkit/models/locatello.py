"""The conv64 network of Locatello et al. 2019 (disentanglement_lib's ``conv_encoder`` /
``deconv_decoder``), the standard of the weakly-supervised study (Locatello et al. 2020) that the
paper's sources follow (Dapueto et al. 2024, §4.1).

Encoder: four 4x4 stride-2 convolutions (32, 32, 64, 64 filters, ReLU) take 64x64 to 4x4, then a
dense layer of 256 units (ReLU) and two dense heads for the mean and the log-variance.
Decoder: dense 256 (ReLU), dense 1024 = 64x4x4 (ReLU), then 4x4 stride-2 transposed convolutions
with 64, 32, 32 (ReLU) and C filters back to 64x64. The last layer has no activation: it returns
Bernoulli logits, and the loss applies the sigmoid inside a numerically stable cross-entropy.
Weights keep PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from disentkit.models.base import VAENetwork


class LocatelloVAE(VAENetwork):
    arch = "locatello"

    def __init__(self, in_channels: int, latent_dim: int):
        super().__init__(in_channels, latent_dim)
        c = self.in_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),  # 64 -> 32
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32 -> 16
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # 16 -> 8
            nn.Conv2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # 8 -> 4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(256, self.latent_dim)
        self.fc_logvar = nn.Linear(256, self.latent_dim)
        self.decoder_fc = nn.Sequential(
            nn.Linear(self.latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 64 * 4 * 4), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # 4 -> 8
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 8 -> 16
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # 16 -> 32
            nn.ConvTranspose2d(32, c, 4, stride=2, padding=1),  # 32 -> 64, logits
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_fc(z).view(-1, 64, 4, 4)
        return self.decoder(h)
