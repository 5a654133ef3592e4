"""β-VAE (Higgins et al. 2017): the ELBO with the KL weighted by β, on single images.

Unsupervised; disentkit uses it to fine-tune a source model on target images (Dapueto et al.
2024 §3.2, "fine-tuning"). It is the template of :class:`~disentkit.methods.base.Method` unchanged.
"""

from __future__ import annotations

from disentkit.methods.base import Method


class BetaVAE(Method):
    name = "beta-vae"
    uses_pairs = False
