"""``disentkit.datasets``: datasets for the Python API (``import disentkit as dk``).

* :func:`get` builds a registered dataset by name (``dk.datasets.get("color-dsprites")``); the
  result is a :class:`~disentkit.data.base.FactorDataset`, which is a map-style torch ``Dataset``:
  ``ds[i] -> (image float32 [C, H, W] in [0, 1], factor classes int64 [K])``, ``len(ds)``.
* :func:`names` lists the registered names (``disentkit datasets list`` shows them with factors).
* :func:`pairs` wraps any dataset as a torch ``Dataset`` of weak-supervision pairs (Locatello et
  al. 2020; Dapueto et al. 2024 §3), usable with ``DataLoader``.

Any object that satisfies the ``FactorDataset`` contract (docs/architecture.md, "Contracts")
works everywhere a name does, without registration: ``dk.train(dataset=MyData(), ...)`` records it
by its class path in ``config.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from disentkit.data.base import FactorDataset
from disentkit.data.pairs import sample_pairs
from disentkit.data.registry import DATASETS, get_dataset

__all__ = ["FactorDataset", "WeakPairs", "get", "names", "pairs"]


def get(name: str, **options: Any) -> FactorDataset:
    """Build dataset ``name`` (``root=`` for real datasets; other constructor options as keywords);
    unknown names raise an error listing the valid ones."""
    return get_dataset(name, **options)


def names() -> list[str]:
    """Every registered dataset name (the CLI's ``--dataset`` values)."""
    return sorted(DATASETS)


class WeakPairs(Dataset):
    """A torch ``Dataset`` of weak-supervision pairs drawn from ``dataset``.

    Item ``i`` is ``(x1 [C, H, W], x2 [C, H, W], changed bool [K])``: two images whose factors
    differ in ``k`` factors (each changed factor takes a different value; constant factors are
    never chosen; on incomplete grids the partner exists). Item ``i`` is drawn with the generator
    seeded by ``(seed, i)``, so it is the same on every access and in every worker process, and
    ``length`` (default: the dataset's number of combinations, capped at 2**31 - 1) says how many
    items an epoch has.
    """

    def __init__(self, dataset: FactorDataset, *, k: int = 1, seed: int = 0,
                 length: int | None = None):
        if length is not None and length < 1:
            raise ValueError(f"length must be >= 1, found {length}")
        self.dataset, self.k, self.seed = dataset, k, int(seed)
        self.length = int(length if length is not None else min(len(dataset), 2**31 - 1))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = int(index)
        if not 0 <= i < self.length:
            raise IndexError(f"index {index} out of range for {self.length} pairs")
        batch = sample_pairs(self.dataset, 1, np.random.default_rng([self.seed, i]), self.k)
        return (torch.from_numpy(np.ascontiguousarray(batch.x1[0], dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(batch.x2[0], dtype=np.float32)),
                torch.from_numpy(batch.changed[0].astype(bool)))


def pairs(dataset: FactorDataset | str, *, k: int = 1, seed: int = 0,
          length: int | None = None) -> WeakPairs:
    """Weak-supervision pairs of ``dataset`` (an object or a registered name) as a torch
    ``Dataset``; see :class:`WeakPairs`."""
    if isinstance(dataset, str):
        dataset = get(dataset)
    return WeakPairs(dataset, k=k, seed=seed, length=length)
