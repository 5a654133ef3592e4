"""Shared fixtures: tiny datasets made in the test, and the optional reference folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

def _find_reference_dir() -> Path:
    """``$DETANGLE_REFERENCE_DIR``, else the nearest ``shared/reference`` above the checkout."""
    if os.environ.get("DETANGLE_REFERENCE_DIR"):
        return Path(os.environ["DETANGLE_REFERENCE_DIR"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "reference").is_dir():
            return parent / "shared" / "reference"
    return Path(__file__).resolve().parents[2] / "shared" / "reference"


REFERENCE_DIR = _find_reference_dir()


@pytest.fixture
def reference_dir() -> Path:
    """``../shared/reference`` when present; tests that need it skip cleanly otherwise."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip("reference folder ../shared/reference is absent")
    return REFERENCE_DIR


@pytest.fixture
def toy_dataset_cls():
    from detangle.data.base import FactorDataset

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
