"""disentkit: disentangled representations from synthetic to real images.

Implements the experiment of Dapueto, Noceti & Odone, "Transferring disentangled
representations: bridging the gap between synthetic and real images" (NeurIPS 2024,
arXiv 2409.18017): datasets with known factors, weakly-supervised VAEs, transfer to real
targets, OMES and the classic disentanglement metrics.

The Python API (docs/python-api.md)::

    import disentkit as dk
    ds = dk.datasets.get("color-dsprites")                 # a torch Dataset
    run = dk.train(dataset=ds, method="ada-gvae", steps=3000, out="runs/src")   # a Run
    codes = run.encode(dk.datasets.get("shapes3d"), n=15008)
    scores = dk.metrics.compute(codes, metrics=["omes", "dci", "mig"])
    tr = dk.transfer(run, target="coins-augmented", finetune_steps=500)

Names are re-exported lazily: nothing heavy (torch) happens at ``import disentkit``
(docs/architecture.md, principle 8).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> "module" (a sub-module) or "module:attribute"
_EXPORTS = {
    "datasets": "disentkit.datasets",
    "metrics": "disentkit.metrics",
    "train": "disentkit.api:train",
    "transfer": "disentkit.api:transfer",
    "Run": "disentkit.api:Run",
    "Codes": "disentkit.api:Codes",
    "TransferResult": "disentkit.api:TransferResult",
    "FactorDataset": "disentkit.data.base:FactorDataset",
    "TrainConfig": "disentkit.config:TrainConfig",
    "EvalSettings": "disentkit.evaluate:EvalSettings",
    "Study": "disentkit.experiment.study:Study",
    "load_study": "disentkit.experiment.study:load_study",
    "run_study": "disentkit.experiment.engine:run_study",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'disentkit' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = importlib.import_module(module_name)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
