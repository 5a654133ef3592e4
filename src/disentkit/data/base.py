"""The dataset contract: a factor space plus a lookup (docs/architecture.md, "Contracts", principle 4).

Every dataset, synthetic or real, exposes its factors of variation (FoVs) as integer classes
``0..n_k-1`` and renders images for any batch of factor tuples. Factor arithmetic (mixed-radix
indices, uniform sampling, incomplete grids) is written once here, so that pairs and metrics
work identically on dSprites' complete grid and on RGB-D Objects' incomplete one.

Complete grids index combinations by mixed radix with the *last* factor fastest, exactly as the
public dSprites/Shapes3D files order their rows.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset


class FactorDataset(Dataset, abc.ABC):
    """Images with known (or tabulated) factors of variation.

    Subclasses set the class attributes (they describe the dataset without building it, so that
    ``disentkit datasets list`` needs no data) and implement :meth:`images`. A dataset whose grid is
    incomplete sets ``self.combinations`` to the int table [M, K] of the combinations present.

    It is also a map-style ``torch.utils.data.Dataset``: ``ds[i]`` is row ``i`` (in the public
    files' order, :meth:`index_to_factors`) as ``(image float32 tensor [C, H, W] in [0, 1],
    factor classes int64 tensor [K])``, rendered with the fixed generator, and ``len(ds)`` is the
    number of combinations; so ``DataLoader(ds)`` works. Training and evaluation use the batched
    :meth:`images` instead.
    """

    name: ClassVar[str] = ""
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    image_shape: tuple[int, int, int] = (1, 64, 64)
    synthetic: ClassVar[bool] = True
    source: ClassVar[str] = ""
    #: True when :meth:`images` ignores ``rng`` and may run in several threads at once (a pure
    #: function of the factors over arrays loaded at construction: the real datasets), so the
    #: training stream may render its batches in parallel (``run.data_workers``)
    thread_safe_images: ClassVar[bool] = False
    #: table [M, K] of the combinations present when the grid is incomplete, else ``None``
    combinations: np.ndarray | None = None

    # ------------------------------------------------------------------ rendering
    @abc.abstractmethod
    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Render ``factors`` (int [n, K]) as float32 images [n, C, H, W] in [0, 1].

        ``rng`` draws nuisances (background noise, crops) that are not factors; ``None`` means a
        fixed generator, so the same call always returns the same images.
        """

    def factor_values(self) -> dict[str, np.ndarray]:
        """Original values of each factor's classes (radians, hues…), as metadata."""
        return {n: np.arange(s) for n, s in zip(self.factor_names, self.factor_sizes)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row ``index`` as ``(image [C, H, W], factor classes [K])``; negative indices count
        from the end; out of range raises ``IndexError``."""
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for dataset {self.name!r} of {n} rows")
        factors = self.index_to_factors(np.array([i]))
        image = self.images(factors)[0]
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), \
            torch.from_numpy(factors[0].astype(np.int64))

    # ------------------------------------------------------------------ factor space
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def is_complete(self) -> bool:
        return self.combinations is None

    def __len__(self) -> int:
        if self.combinations is not None:
            return int(len(self.combinations))
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    @property
    def radix(self) -> np.ndarray:
        """Mixed-radix weights, last factor fastest (the public files' row order)."""
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def grid_code(self, factors: np.ndarray) -> np.ndarray:
        """Mixed-radix code of each factor tuple in the *full* grid (complete or not)."""
        factors = self.check_factors(factors)
        return factors @ self.radix

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        """Row index → factor classes. On an incomplete grid, rows of :attr:`combinations`."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise ValueError(f"index out of range [0, {len(self)}) for dataset {self.name!r}")
        if self.combinations is not None:
            return self.combinations[index]
        radix = self.radix
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return (index[..., None] // radix) % sizes

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Factor classes → row index (inverse of :meth:`index_to_factors`)."""
        code = self.grid_code(factors)
        if self.combinations is None:
            return code
        table = self._sorted_codes()
        pos = np.searchsorted(table[0], code)
        pos = np.clip(pos, 0, len(table[0]) - 1)
        if not np.all(table[0][pos] == code):
            raise ValueError(f"factor combination not present in dataset {self.name!r}")
        return table[1][pos]

    def contains(self, factors: np.ndarray) -> np.ndarray:
        """Boolean [n]: which factor tuples exist (always within bounds on a complete grid)."""
        factors = np.asarray(factors, dtype=np.int64)
        sizes = np.asarray(self.factor_sizes)
        inside = np.all((factors >= 0) & (factors < sizes), axis=-1)
        if self.combinations is None:
            return inside
        codes = np.where(inside, np.clip(factors, 0, sizes - 1) @ self.radix, -1)
        table = self._sorted_codes()[0]
        pos = np.clip(np.searchsorted(table, codes), 0, len(table) - 1)
        return inside & (table[pos] == codes)

    def _sorted_codes(self) -> tuple[np.ndarray, np.ndarray]:
        cache = getattr(self, "_sorted_codes_cache", None)
        if cache is None:
            codes = np.asarray(self.combinations, dtype=np.int64) @ self.radix
            order = np.argsort(codes, kind="stable")
            cache = (codes[order], order)
            self._sorted_codes_cache = cache
        return cache

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor tuples drawn uniformly over the combinations that exist."""
        if self.combinations is not None:
            return self.combinations[rng.integers(0, len(self.combinations), size=n)]
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return rng.integers(0, sizes, size=(n, len(sizes)), dtype=np.int64)

    def check_factors(self, factors: np.ndarray) -> np.ndarray:
        """Validate an int [n, K] factor array; raise ``ValueError`` naming the problem."""
        arr = np.asarray(factors)
        if arr.ndim != 2 or arr.shape[1] != self.num_factors:
            raise ValueError(
                f"{self.name}: expected factors of shape [n, {self.num_factors}] "
                f"({', '.join(self.factor_names)}), found {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise ValueError(f"{self.name}: factor classes must be integers")
        arr = arr.astype(np.int64, copy=False)
        sizes = np.asarray(self.factor_sizes)
        bad = (arr < 0) | (arr >= sizes)
        if bad.any():
            k = int(np.argwhere(bad)[0, 1])
            raise ValueError(
                f"{self.name}: factor {self.factor_names[k]!r} must be in [0, {sizes[k]}), "
                f"found {int(arr[bad][0])}"
            )
        return arr

    def describe(self) -> dict:
        """One row of ``disentkit datasets list``."""
        return describe_class(type(self), self)


def describe_class(cls: type[FactorDataset], instance: FactorDataset | None = None) -> dict:
    obj = instance if instance is not None else cls
    return {
        "name": cls.name,
        "factors": ", ".join(f"{n}={s}" for n, s in zip(obj.factor_names, obj.factor_sizes)),
        "image_shape": "x".join(str(s) for s in obj.image_shape),
        "kind": "synthetic" if cls.synthetic else "real",
        "source": cls.source,
    }
