"""A picture of a dataset: random samples, then one traversal row per factor.

Used by ``disentkit datasets show`` so a user can check, at a glance, that every factor does what
its name says before training on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disentkit.data.base import FactorDataset
from disentkit.viz.figures import figure, save_figure, to_hwc

MAX_TRAVERSAL = 12


def traversal_factors(dataset: FactorDataset, base: np.ndarray, k: int) -> np.ndarray:
    """Factor tuples that walk factor ``k`` through (up to 12 evenly spaced) values from ``base``.

    On an incomplete grid only combinations that exist are kept.
    """
    size = dataset.factor_sizes[k]
    values = np.unique(np.linspace(0, size - 1, min(size, MAX_TRAVERSAL)).round().astype(int))
    rows = np.repeat(base[None, :], len(values), axis=0)
    rows[:, k] = values
    return rows[dataset.contains(rows)]


def dataset_figure(dataset: FactorDataset, seed: int = 0, n_samples: int = 12):
    """Matplotlib figure: a row of random samples and one labelled traversal row per factor."""
    rng = np.random.default_rng(seed)
    samples = dataset.images(dataset.sample_factors(n_samples, rng), rng)
    base = dataset.sample_factors(1, rng)[0]
    rows = [("random samples", samples)]
    for k, name in enumerate(dataset.factor_names):
        if dataset.factor_sizes[k] < 2:
            continue
        factors = traversal_factors(dataset, base, k)
        rows.append((f"{name} ({dataset.factor_sizes[k]})", dataset.images(factors, rng)))
    ncols = max(len(r[1]) for r in rows)
    fig = figure(figsize=(1.1 * ncols + 1.6, 1.15 * len(rows)))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    cmap = "gray" if dataset.image_shape[0] == 1 else None
    for r, (label, imgs) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(imgs):
                ax.imshow(to_hwc(imgs[c]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{dataset.name}: samples and factor traversals (seed {seed})", fontsize=10)
    fig.tight_layout()
    return fig


def save_dataset_figure(dataset: FactorDataset, out: str | Path, seed: int = 0) -> Path:
    """Write :func:`dataset_figure` as a PNG, atomically."""
    return save_figure(dataset_figure(dataset, seed=seed), out)
