"""Shared machinery of the weakly-supervised methods (Locatello et al. 2020, "Weakly-supervised
disentanglement without compromises"): pairs of images that differ in a few factors.

The two images' posteriors q1, q2 are compared dimension by dimension; the dimensions judged
*shared* get one common posterior for both images, the others keep their own. Subclasses decide
which dimensions are shared (:meth:`PairMethod.shared_mask`) and how two Gaussians are merged
(:meth:`PairMethod.merge`).
"""

from __future__ import annotations

import math

import torch

from disentkit.methods.base import Batch, Method


def pair_divergence(mu1, logvar1, mu2, logvar2, divergence: str = "symmetric") -> torch.Tensor:
    """Per-dimension divergence δ_d [n, D] between the pair's diagonal Gaussians.

    ``"symmetric"``: KL(q1‖q2) + KL(q2‖q1), the default. The pair's order is arbitrary (x1 is not
    more "original" than x2), so the selection of shared dimensions should not depend on it; the
    paper's public code uses the symmetric form too. ``"forward"``: KL(q1‖q2) only, as in
    disentanglement_lib (up to its factor 2, which does not move the threshold).
    """
    var1, var2 = logvar1.exp(), logvar2.exp()
    d2 = (mu1 - mu2).square()
    kl12 = 0.5 * ((var1 + d2) / var2 - 1.0 + logvar2 - logvar1)
    if divergence == "forward":
        return kl12
    if divergence == "symmetric":
        kl21 = 0.5 * ((var2 + d2) / var1 - 1.0 + logvar1 - logvar2)
        return kl12 + kl21
    raise ValueError(f"divergence must be 'symmetric' or 'forward', found {divergence!r}")


def adaptive_shared_mask(delta: torch.Tensor) -> torch.Tensor:
    """Bool [n, D]: dimensions with δ_d < τ, τ = (min_d δ_d + max_d δ_d) / 2, *per pair*.

    Locatello et al. 2020 (§4, "adaptive") bin δ into two equal-width bins; the lower bin is shared.
    The paper's public code takes min and max over the whole batch; we take them per pair, as the
    method is defined. When all δ_d are equal nothing is shared.
    """
    tau = 0.5 * (delta.amin(dim=1, keepdim=True) + delta.amax(dim=1, keepdim=True))
    return delta < tau


def average_gaussians(mu1, logvar1, mu2, logvar2):
    """Mean of means and log of the mean of variances (Ada-GVAE's merge)."""
    return 0.5 * (mu1 + mu2), torch.logaddexp(logvar1, logvar2) - math.log(2.0)


def product_of_gaussians(mu1, logvar1, mu2, logvar2):
    """Normalised product N(m1, v1)·N(m2, v2): v = v1 v2 / (v1 + v2), m = (m1 v2 + m2 v1)/(v1 + v2).

    Ada-ML-VAE's merge. (disentanglement_lib's ML-VAE keeps this mean but uses 2·v, the harmonic
    mean of the variances; we implement the product as stated in the method.)
    """
    log_sum = torch.logaddexp(logvar1, logvar2)
    w1 = torch.exp(logvar2 - log_sum)  # v2 / (v1 + v2)
    return w1 * mu1 + (1.0 - w1) * mu2, logvar1 + logvar2 - log_sum


class PairMethod(Method):
    """Template for pair methods: split the 2n posteriors, merge shared dimensions, rejoin."""

    uses_pairs = True

    def shared_mask(self, mu1, logvar1, mu2, logvar2, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def merge(self, mu1, logvar1, mu2, logvar2):
        return average_gaussians(mu1, logvar1, mu2, logvar2)

    def aggregate(self, mu: torch.Tensor, logvar: torch.Tensor, batch: Batch):
        if batch.x2 is None:
            raise ValueError(f"method {self.name!r} trains on pairs; found a batch of single images")
        mu1, mu2 = mu.chunk(2)
        logvar1, logvar2 = logvar.chunk(2)
        with torch.no_grad():  # the selection is discrete: no gradient flows through it
            shared = self.shared_mask(mu1, logvar1, mu2, logvar2, batch)
        new_mu, new_logvar = self.merge(mu1, logvar1, mu2, logvar2)
        out_mu = torch.cat([torch.where(shared, new_mu, mu1), torch.where(shared, new_mu, mu2)])
        out_logvar = torch.cat(
            [torch.where(shared, new_logvar, logvar1), torch.where(shared, new_logvar, logvar2)]
        )
        return out_mu, out_logvar
