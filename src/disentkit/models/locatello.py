"""The conv64 network of Locatello et al. 2019: disentanglement_lib's ``conv_encoder`` and
``deconv_decoder`` (``methods/shared/architectures.py``), layer for layer. It is the standard of
the weakly-supervised study (Locatello et al. 2020) that the paper's sources follow (Dapueto et
al. 2024, §4.1).

Encoder (TF ``padding="same"``, stride 2, ReLU): conv 32 k4, conv 32 k4, conv 64 k2, conv 64 k2
take 64 -> 32 -> 16 -> 8 -> 4; dense 256 (ReLU); two dense heads, means and log-variances.
"same" padding with stride 2 pads a k4 layer by 1 pixel on each side (total 2, even) and a k2
layer by nothing, hence ``padding=1`` and ``padding=0`` below.
Decoder: dense 256 (ReLU), dense 1024 (ReLU) reshaped to 64 x 4 x 4, transposed convolutions
k4 stride 2 "same" with 64, 32, 32 (ReLU) and C filters (4 -> 8 -> 16 -> 32 -> 64); PyTorch's
``ConvTranspose2d(k=4, s=2, padding=1)`` is exactly the transpose of that padded convolution.
The last layer has no activation: it returns Bernoulli logits (disentanglement_lib applies the
sigmoid inside its loss too).

Initialisation as TF 1's ``tf.layers`` defaults: Glorot-uniform kernels, zero biases. The
Glorot bound depends on fan_in + fan_out only, which is the same for a TF kernel and its
PyTorch layout (TF ``conv2d_transpose`` kernels are [k, k, out, in]).

One layout difference that changes nothing: TF flattens and reshapes channels-last (4 x 4 x 64),
PyTorch channels-first (64 x 4 x 4). The dense layers around the reshape see their inputs
(outputs) in a permuted order; with i.i.d. initial weights the two networks are the same family
of functions with the same initial distribution.
"""

from __future__ import annotations

import torch
from torch import nn

from disentkit.models.base import VAENetwork


def _init_glorot_zero(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class LocatelloVAE(VAENetwork):
    arch = "locatello"

    def __init__(self, in_channels: int, latent_dim: int):
        super().__init__(in_channels, latent_dim)
        c = self.in_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),  # e1: 64 -> 32
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # e2: 32 -> 16
            nn.Conv2d(32, 64, 2, stride=2, padding=0), nn.ReLU(),  # e3: 16 -> 8
            nn.Conv2d(64, 64, 2, stride=2, padding=0), nn.ReLU(),  # e4: 8 -> 4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 256), nn.ReLU(),  # e5
        )
        self.fc_mu = nn.Linear(256, self.latent_dim)  # "means"
        self.fc_logvar = nn.Linear(256, self.latent_dim)  # "log_var"
        self.decoder_fc = nn.Sequential(
            nn.Linear(self.latent_dim, 256), nn.ReLU(),  # d1
            nn.Linear(256, 64 * 4 * 4), nn.ReLU(),  # d2, reshaped to 4x4x64
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # d3: 4 -> 8
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # d4: 8 -> 16
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # d5: 16 -> 32
            nn.ConvTranspose2d(32, c, 4, stride=2, padding=1),  # d6: 32 -> 64, logits
        )
        self.apply(_init_glorot_zero)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_fc(z).view(-1, 64, 4, 4)
        return self.decoder(h)
