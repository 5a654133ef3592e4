"""Datasets with known factors of variation: synthetic ones generated, real ones read from disk."""

from detangle.data.base import FactorDataset
from detangle.data.pairs import PairBatch, sample_pairs
from detangle.data.registry import DATASETS, available_datasets, dataset_class, get_dataset

__all__ = [
    "DATASETS",
    "FactorDataset",
    "PairBatch",
    "available_datasets",
    "dataset_class",
    "get_dataset",
    "sample_pairs",
]
