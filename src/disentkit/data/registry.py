"""One registry of datasets: public name → constructor (docs/architecture.md, principle 7).

Entries are ``"module:Class"`` strings imported on first use, so that importing disentkit (or
listing datasets) never pulls in optional dependencies. The name is the CLI value.
"""

from __future__ import annotations

import inspect
from typing import Any

from disentkit.data.base import FactorDataset
from disentkit._registry import lookup

DATASETS: dict[str, str] = {
    # synthetic, generated (issue: foundation)
    "dsprites": "disentkit.data.dsprites:DSprites",
    "white-dsprites": "disentkit.data.dsprites_variants:WhiteDSprites",
    "color-dsprites": "disentkit.data.dsprites_variants:ColorDSprites",
    "noisy-dsprites": "disentkit.data.dsprites_variants:NoisyDSprites",
    "noisy-color-dsprites": "disentkit.data.dsprites_variants:NoisyColorDSprites",
    "scream-dsprites": "disentkit.data.dsprites_variants:ScreamDSprites",
    "shapes3d": "disentkit.data.shapes3d:Shapes3D",
    # real (issue: real datasets)
    "coil100": "disentkit.data.coil100:Coil100",
    "coil100-augmented": "disentkit.data.coil100:Coil100Augmented",
    "coil100-augmented-binary": "disentkit.data.coil100:Coil100AugmentedBinary",
    "rgbd-objects": "disentkit.data.rgbd:RGBDObjects",
    "rgbd-objects-depth": "disentkit.data.rgbd:RGBDObjectsDepth",
    "mpi3d-toy": "disentkit.data.mpi3d:MPI3DToy",
    "mpi3d-realistic": "disentkit.data.mpi3d:MPI3DRealistic",
    "mpi3d-real": "disentkit.data.mpi3d:MPI3DReal",
    "folder": "disentkit.data.folder:FolderDataset",
    "coins-augmented": "disentkit.data.coins:CoinsAugmented",
}


def dataset_class(name: str) -> type[FactorDataset]:
    """The class registered under ``name``; unknown names list the valid ones."""
    return lookup("dataset", name, DATASETS)


def available_datasets() -> list[str]:
    """Every registered name. An entry whose optional dependency is missing is not dropped: it
    raises an ``ImportError`` naming the dataset when it is used (docs/architecture.md, principle 7)."""
    return list(DATASETS)


def datasets_without_root() -> list[str]:
    """Available datasets whose constructor does not require ``root`` (the generated ones)."""
    names = []
    for name in available_datasets():
        root = inspect.signature(dataset_class(name)).parameters.get("root")
        if root is None or root.default is not inspect.Parameter.empty:
            names.append(name)
    return names


def get_dataset(name: str, **kwargs: Any) -> FactorDataset:
    """Build dataset ``name``. ``root=`` points real datasets (and original synthetic files) at a
    folder; keyword arguments the constructor does not accept raise ``ValueError``."""
    cls = dataset_class(name)
    params = inspect.signature(cls).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not accepts_any]
    if unknown:
        valid = [p for p in params if p != "self"]
        raise ValueError(f"dataset {name!r} does not take {unknown}; it takes {valid}")
    missing = [
        p.name
        for p in params.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if missing:
        hint = " (the folder holding its files: --root DIR)" if "root" in missing else ""
        raise ValueError(f"dataset {name!r} needs {', '.join(missing)}{hint}")
    return cls(**kwargs)
