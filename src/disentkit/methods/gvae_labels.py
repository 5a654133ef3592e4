"""The paper's known-factor GVAE (Dapueto et al. 2024 §3.1; disentanglement_lib's "labels"
aggregation): the latent dimension whose index is the changed factor's index keeps each image's
own posterior, every other dimension is averaged between the two images.

This uses *stronger* supervision than Ada-GVAE: it is told *which* factor changed, and it ties
factor k to latent dimension k, so the code's first K dimensions are aligned with the dataset's
factors by construction. It needs ``latent_dim >= number of factors``; with several changed
factors (pairs with k > 1), every changed factor's dimension keeps its own posterior.
"""

from __future__ import annotations

import torch

from disentkit.methods.weak import PairMethod


class GVAELabels(PairMethod):
    name = "gvae-labels"

    def check(self, dataset, latent_dim: int) -> None:
        """Factor k is tied to latent dimension k: ``latent_dim`` must cover every factor."""
        if latent_dim < dataset.num_factors:
            raise ValueError(
                f"gvae-labels ties factor k to latent dimension k: latent_dim must be >= the "
                f"{dataset.num_factors} factors of {dataset.name!r}, found {latent_dim}"
            )

    def shared_mask(self, mu1, logvar1, mu2, logvar2, batch):
        changed = batch.changed
        if changed is None:
            raise ValueError("gvae-labels needs the changed-factor mask of each pair; found none")
        n, dim = mu1.shape
        if changed.shape[1] > dim and bool(changed[:, dim:].any()):
            raise ValueError(
                f"gvae-labels ties factor k to latent dimension k: a changed factor index "
                f">= latent_dim={dim} has no dimension (use latent_dim >= {changed.shape[1]})"
            )
        k = min(dim, changed.shape[1])
        own = changed[:, :k].to(device=mu1.device, dtype=torch.bool)
        if dim > k:  # out of place (no slice assignment), so the step also runs under vmap
            own = torch.cat([own, own.new_zeros((n, dim - k))], dim=1)
        return ~own
