"""Datasets with known factors of variation: synthetic ones generated, real ones read from disk."""

from disentkit.data.base import FactorDataset
from disentkit.data.pairs import PairBatch, sample_pairs
from disentkit.data.registry import DATASETS, available_datasets, dataset_class, get_dataset

__all__ = [
    "DATASETS",
    "FactorDataset",
    "PairBatch",
    "available_datasets",
    "dataset_class",
    "get_dataset",
    "sample_pairs",
]
