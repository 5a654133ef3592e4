"""Networks (encoders/decoders, no losses): a registry from public name to class (docs/architecture.md, principle 7).

``build_model(arch, in_channels, latent_dim)`` returns an ``nn.Module`` with
``encode(x) -> (mu, logvar)`` and ``decode(z) -> logits``. Entries are ``"module:Class"`` strings
imported on first use, so importing disentkit does not import torch.
"""

from __future__ import annotations

from disentkit._registry import lookup

ARCHITECTURES: dict[str, str] = {
    "locatello": "disentkit.models.locatello:LocatelloVAE",
    "paper": "disentkit.models.paper:PaperVAE",
}


def model_class(arch: str):
    """The network class registered under ``arch``; unknown names list the valid ones."""
    return lookup("architecture", arch, ARCHITECTURES)


def build_model(arch: str, in_channels: int, latent_dim: int):
    """A freshly initialised network (initialisation uses torch's global generator: seed it with
    ``torch.manual_seed`` or build under ``torch.random.fork_rng`` for reproducible weights)."""
    return model_class(arch)(in_channels, latent_dim)
