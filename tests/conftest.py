"""Shared fixtures: tiny datasets made in the test, and the reference files in ``tests/data``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

#: small public files the fidelity tests read (sources and licences in ``tests/data/NOTICE.md``)
REFERENCE_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture
def reference_dir() -> Path:
    """``tests/data``: real dSprites/Shapes3D frames and the paper's OMES example, kept in the repo."""
    return REFERENCE_DIR


@pytest.fixture
def toy_dataset_cls():
    from disentkit.data.base import FactorDataset

    class Toy(FactorDataset):
        name = "toy"
        source = "made in the test"

        def __init__(self, sizes=(1, 3, 4, 5), combinations=None):
            self.factor_sizes = tuple(sizes)
            self.factor_names = tuple(f"f{i}" for i in range(len(sizes)))
            self.image_shape = (1, 4, 4)
            self.combinations = combinations

        def images(self, factors, rng=None):
            factors = self.check_factors(factors)
            out = np.zeros((len(factors), 1, 4, 4), dtype=np.float32)
            out[:, 0, 0, : factors.shape[1]] = factors / np.maximum(np.array(self.factor_sizes) - 1, 1)
            return out

    return Toy
