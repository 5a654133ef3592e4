"""Ada-GVAE (Locatello et al. 2020): shared dimensions are found adaptively per pair and both
posteriors are replaced there by their average (mean of means, log of the mean of variances).

This is the weak supervision of the paper's setting in which the changed factor is *not* known
(Dapueto et al. 2024 §3.1); the known-factor variant is :mod:`disentkit.methods.gvae_labels`.
"""

from __future__ import annotations

from disentkit.methods.weak import PairMethod, adaptive_shared_mask, pair_divergence


class AdaGVAE(PairMethod):
    name = "ada-gvae"

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, divergence: str = "symmetric"):
        super().__init__(beta, warmup_steps)
        if divergence not in ("symmetric", "forward"):
            raise ValueError(f"divergence must be 'symmetric' or 'forward', found {divergence!r}")
        self.divergence = divergence

    def shared_mask(self, mu1, logvar1, mu2, logvar2, batch):
        delta = pair_divergence(mu1, logvar1, mu2, logvar2, self.divergence)
        return adaptive_shared_mask(delta)
