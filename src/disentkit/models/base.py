"""What every network shares: the encode/decode contract and an input check (docs/architecture.md, "Contracts").

A network maps images [n, C, 64, 64] in [0, 1] to the parameters of a diagonal Gaussian posterior
``(mu, logvar)`` and latent codes back to Bernoulli *logits*. Networks hold no loss: the methods
(``disentkit.methods``) own it, so one network serves every method (docs/architecture.md, principle 6).
"""

from __future__ import annotations

import torch
from torch import nn

#: both published networks are built for 64x64 images (Locatello et al. 2019, Dapueto et al. 2024)
IMAGE_SIZE = 64


class VAENetwork(nn.Module):
    """Encoder + decoder of a VAE. Subclasses build ``self.encoder`` / ``self.decoder`` parts."""

    arch: str = ""

    def __init__(self, in_channels: int, latent_dim: int):
        super().__init__()
        if int(in_channels) < 1 or int(latent_dim) < 1:
            raise ValueError(
                f"{type(self).__name__}: in_channels and latent_dim must be >= 1, "
                f"found in_channels={in_channels}, latent_dim={latent_dim}"
            )
        self.in_channels = int(in_channels)
        self.latent_dim = int(latent_dim)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` when ``x`` is not [n, C, 64, 64] with this network's C."""
        expected = (self.in_channels, IMAGE_SIZE, IMAGE_SIZE)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{self.arch} network expects images [n, {expected[0]}, {IMAGE_SIZE}, {IMAGE_SIZE}], "
                f"found {list(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [n, C, 64, 64] -> posterior mean and log-variance, each [n, latent_dim]."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes [n, latent_dim] -> Bernoulli logits [n, C, 64, 64] (``sigmoid`` gives pixels)."""
        raise NotImplementedError

    def encoder_modules(self) -> list[nn.Module]:
        """The modules that map images to the posterior (convolutions and the two heads)."""
        return [self.encoder, self.fc_mu, self.fc_logvar]

    def decoder_modules(self) -> list[nn.Module]:
        """The modules that map codes to logits."""
        return [self.decoder_fc, self.decoder]

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the encoder part (what fine-tuning ``encoder`` trains)."""
        return [p for m in self.encoder_modules() for p in m.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the decoder part (what fine-tuning ``decoder`` trains)."""
        return [p for m in self.decoder_modules() for p in m.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction logits from the posterior mean (for figures and checks)."""
        mu, _ = self.encode(x)
        return self.decode(mu)
