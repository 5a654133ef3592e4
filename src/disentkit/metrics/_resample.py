"""Vectorised pieces of the fast bootstrap (:mod:`disentkit.metrics.bootstrap`): resampled
means and ROC-AUCs from per-row counts, and MIG's mutual information in one bincount per factor.

Each equals the function it replaces on the expanded (resampled) rows, which
``tests/test_metrics_bootstrap.py`` checks against scikit-learn and
:mod:`disentkit.metrics._common`.
"""

from __future__ import annotations

import numpy as np


def row_counts(idx: np.ndarray, start: int, size: int) -> np.ndarray:
    """[B, size] how often each row of [start, start+size) appears in each resample of ``idx``."""
    b = np.arange(idx.shape[0])[:, None]
    flat = (b * size + (idx - start)).ravel()
    return np.bincount(flat, minlength=idx.shape[0] * size).reshape(idx.shape[0], size).astype(
        np.float64
    )


def weighted_mean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Resampled means of ``values`` [rows, ...] with ``counts`` [B, rows] → [B, ...]."""
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    out = counts @ flat / counts.sum(axis=1, keepdims=True)
    return out.reshape((counts.shape[0],) + values.shape[1:])


def weighted_auc(scores: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``scores`` for the ``positive`` rows under each resample's row ``counts``.

    The Mann-Whitney form with ties counted ½, the quantity ``roc_auc_score`` computes; NaN where
    a resample holds no positive or no negative row. One sort serves every resample.
    """
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w = counts[:, order]
    pos = positive[order]
    w_pos = np.add.reduceat(w * pos, starts, axis=1)
    w_neg = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(w_neg, axis=1) - w_neg
    num = np.sum(w_pos * (below + 0.5 * w_neg), axis=1)
    den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def dense_labels(factors: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Factors as labels 0..C_k−1 per column, and the class counts C_k."""
    cols, sizes = [], []
    for k in range(factors.shape[1]):
        values, inverse = np.unique(factors[:, k], return_inverse=True)
        cols.append(inverse.ravel())
        sizes.append(len(values))
    return np.stack(cols, axis=1), sizes


def mutual_information_fast(discrete: np.ndarray, labels: np.ndarray, sizes) -> np.ndarray:
    """MI[d, k] (nats) of discretised codes and dense labels: one bincount per factor.

    Equal (to rounding) to :func:`disentkit.metrics._common.mutual_information_matrix`, which
    relabels every pair with ``np.unique`` and is ~10x slower; MI ignores absent labels.
    """
    n, d = discrete.shape
    nb = int(discrete.max()) + 1
    out = np.empty((d, labels.shape[1]))
    cell = (np.arange(d) * nb)[None, :] + discrete  # [n, D]
    for k, c in enumerate(sizes):
        joint = np.bincount((cell * c + labels[:, k : k + 1]).ravel(), minlength=d * nb * c)
        pj = joint.reshape(d, nb, c) / n
        pa = pj.sum(axis=2, keepdims=True)
        pb = pj.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(pj > 0, pj * np.log(pj / (pa * pb)), 0.0)
        out[:, k] = np.maximum(terms.sum(axis=(1, 2)), 0.0)
    return out


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """:func:`disentkit.metrics._common.histogram_discretize` without computing the histograms
    (the same edges, ``np.histogram_bin_edges``; the same ``np.digitize`` labels)."""
    out = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, d], num_bins)[:-1]
        out[:, d] = np.searchsorted(edges, codes[:, d], side="right")
    return out


def label_entropy(labels: np.ndarray, size: int) -> float:
    """Entropy (nats) of dense labels."""
    p = np.bincount(labels, minlength=size) / len(labels)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def mig_score(codes: np.ndarray, labels: np.ndarray, sizes, num_bins: int = 20) -> float:
    """MIG (as :func:`disentkit.metrics.mig.mig`) from codes and dense labels."""
    mi = mutual_information_fast(discretize(codes, num_bins), labels, sizes)
    h = np.array([label_entropy(labels[:, k], c) for k, c in enumerate(sizes)])
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean((top[0] - second) / h))
