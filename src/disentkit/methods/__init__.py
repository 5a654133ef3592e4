"""Methods own the loss (docs/architecture.md, "Contracts"): a registry from public name to class.

``build_method(name, **options)`` builds one; ``options`` are the class's constructor arguments
(``beta``, ``warmup_steps``, and for the adaptive methods ``divergence``). Unknown names or
options raise errors that list the valid ones.
"""

from __future__ import annotations

import inspect

from disentkit._registry import lookup

METHODS: dict[str, str] = {
    "beta-vae": "disentkit.methods.beta_vae:BetaVAE",
    "ada-gvae": "disentkit.methods.ada_gvae:AdaGVAE",
    "ada-ml-vae": "disentkit.methods.ada_ml_vae:AdaMLVAE",
    "gvae-labels": "disentkit.methods.gvae_labels:GVAELabels",
}


def method_class(name: str):
    return lookup("method", name, METHODS)


def build_method(name: str, **options):
    """The method registered under ``name``, built with ``options``."""
    cls = method_class(name)
    params = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = [k for k in options if k not in params]
    if unknown:
        raise ValueError(f"method {name!r} does not take option(s) {unknown}; it takes {params}")
    return cls(**options)
