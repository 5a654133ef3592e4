"""Ada-ML-VAE (Locatello et al. 2020, after the ML-VAE of Bouchacourt et al. 2018): the same
adaptive selection as Ada-GVAE, but shared dimensions take the product of the two Gaussians.
"""

from __future__ import annotations

from disentkit.methods.ada_gvae import AdaGVAE
from disentkit.methods.weak import product_of_gaussians


class AdaMLVAE(AdaGVAE):
    name = "ada-ml-vae"

    def merge(self, mu1, logvar1, mu2, logvar2):
        return product_of_gaussians(mu1, logvar1, mu2, logvar2)
