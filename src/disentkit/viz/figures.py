"""The report's figures, drawn with matplotlib from arrays (no model, no file reading here).

- reconstructions: inputs above their reconstructions (Dapueto et al. 2024, Fig. 3 style), for the
  source and for each target before and after fine-tuning;
- latent traversals: one row per active dimension, labelled with the factor OMES associates to
  it, so a reader sees *which* dimension holds *which* factor (the paper's argument for OMES, §3);
- the OMES relation matrix M (dimensions × factors) as a heat map, exactly OMES's association boxed;
- training and fine-tuning curves from ``log.jsonl``.

Every function returns a Figure; :func:`save_figure` writes it atomically as PNG.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from disentkit.io import atomic_path

CURVE_KEYS = (("loss", "loss"), ("reconstruction", "reconstruction"), ("kl", "KL"))
#: an associated cell below this relation is drawn dashed: OMES chose it by OS, not by M
WEAK_RELATION = 0.1


def figure(figsize):
    """A ``matplotlib.figure.Figure`` outside pyplot: no backend switch, no global figure list,
    so plotting here never disturbs the caller's matplotlib (inline plots in a notebook)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def to_hwc(img: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))


def montage(rows: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
    """Rows of images [m, C, H, W] tiled into one RGB array (white gaps), for a single imshow:
    one image per figure is ~10x faster to draw than one matplotlib axes per image."""
    shapes = {tuple(np.asarray(r).shape[2:]) for r in rows if len(r)}
    if len(shapes) != 1:
        raise ValueError(f"all images of a montage must share one H x W size, found {sorted(shapes)}")
    h, w = shapes.pop()
    ncols = max(len(r) for r in rows)
    out = np.ones((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), dtype=np.float32)
    for i, imgs in enumerate(rows):
        for j, img in enumerate(imgs):
            tile = to_hwc(img)
            if tile.ndim == 2:
                tile = np.repeat(tile[..., None], 3, axis=2)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = tile
    return out


def image_rows_figure(rows: Sequence[tuple[str, np.ndarray]], title: str):
    """Rows of images [m, C, H, W] in [0, 1], each labelled on its left."""
    if not rows:
        raise ValueError("image_rows_figure needs at least one row of images")
    grid = montage([imgs for _, imgs in rows])
    h = np.asarray(rows[0][1]).shape[2] + 2
    ncols = max(len(imgs) for _, imgs in rows)
    label_in = max(1.2, 0.075 * max(len(lbl) for lbl, _ in rows) + 0.3)  # room for the labels
    width, height = 0.75 * ncols + label_in + 0.1, 0.75 * len(rows) + 0.6
    fig = figure((width, height))
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([2 + i * h + h / 2 for i in range(len(rows))], labels=[lbl for lbl, _ in rows],
                  fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=label_in / width, right=0.99, top=1 - 0.4 / height, bottom=0.05 / height)
    return fig


def reconstruction_figure(inputs: np.ndarray, recon: np.ndarray, title: str):
    """Inputs (top row) above the model's reconstructions (bottom row)."""
    if inputs.shape != recon.shape:
        raise ValueError(f"inputs {inputs.shape} and reconstructions {recon.shape} differ in shape")
    return image_rows_figure([("input", inputs), ("reconstruction", recon)], title)


def traversal_label(dim: int, association: Mapping[str, int | None]) -> str:
    """``"z3: shape"`` when OMES associates dimension 3 with shape, else ``"z3: –"``."""
    names = [f for f, d in association.items() if d is not None and int(d) == int(dim)]
    return f"z{dim}: {', '.join(names) if names else '–'}"


def traversal_figure(
    rows: Sequence[tuple[int, np.ndarray]], association: Mapping[str, int | None], title: str
):
    """One row per (dimension, decoded images along that dimension), labelled with its factor."""
    return image_rows_figure([(traversal_label(d, association), imgs) for d, imgs in rows], title)


def relation_figure(
    relation: np.ndarray,
    dims: Sequence[int],
    factor_names: Sequence[str],
    association: Mapping[str, int | None],
    title: str,
):
    """Heat map of OMES's relation matrix M[d, k] (rows: active dimensions by their original
    index; columns: factors); a box marks exactly the cells of OMES's association.

    The association is *not* the column's largest M: OMES pairs factor k with the dimension of
    highest overlap score OS(d, k) (Dapueto et al. 2024, Eq. 1), which penalises a dimension that
    also moves with other factors — so a box can sit on 0.48 while its column holds 0.67, or on a
    small M of a dimension that moves with nothing else. The colour is M itself, stated on the
    colour bar and in the title; numbers are drawn at 10 pt so they read without zooming.
    """
    from matplotlib.patches import Rectangle

    m = np.asarray(relation, dtype=float)
    if m.ndim != 2 or m.shape != (len(dims), len(factor_names)):
        raise ValueError(
            f"relation matrix must be [{len(dims)} dims, {len(factor_names)} factors], found {m.shape}"
        )
    unknown = sorted(set(association) - set(factor_names))
    row_of = {int(d): i for i, d in enumerate(dims)}
    stray = [d for d in association.values() if d is not None and int(d) not in row_of]
    if unknown or stray:
        raise ValueError(f"association names factors {unknown} or dimensions {stray} that the "
                         "relation matrix does not show")
    width = 2.2 + 0.95 * len(factor_names)
    fig = figure((width, 1.7 + 0.5 * max(len(dims), 1)))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(factor_names)), labels=list(factor_names), rotation=30, ha="right",
                  fontsize=10)
    ax.set_yticks(range(len(dims)), labels=[f"z{d}" for d in dims], fontsize=10)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=10,
                    color="white" if m[i, j] < 0.6 else "black")
    weak = False
    for j, name in enumerate(factor_names):
        d = association.get(name)
        if d is not None:
            i = row_of[int(d)]
            faint = m[i, j] < WEAK_RELATION  # OS picked a dimension that hardly moves with k
            weak |= faint
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                   linewidth=2.5, linestyle="--" if faint else "-"))
    fig.colorbar(im, ax=ax, fraction=0.05, label="M[d, k]")
    note = (f"\ndashed box: M < {WEAK_RELATION:g} — OS chose a dimension that hardly moves with k"
            if weak else "")
    ax.set_title(f"{title}\ncolour and numbers: M[d, k] = 1 − |corr| over pairs differing in k only"
                 "\nred box: OMES association (per factor, the dimension of highest overlap score "
                 f"OS){note}", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.9, bottom=0.14, top=0.8 if weak else 0.83)
    return fig


def curves_figure(series: Mapping[str, Sequence[Mapping]], title: str):
    """Loss, reconstruction and KL against the step, one line per series (training, fine-tuning).

    ``series`` maps a label to the records of a ``log.jsonl``; keys a log lacks are skipped.
    """
    panels = [
        (key, label)
        for key, label in CURVE_KEYS
        if any(key in rec for recs in series.values() for rec in recs)
    ]
    if not panels:
        raise ValueError(f"no curve to draw: the logs have none of the keys {[k for k, _ in CURVE_KEYS]}")
    fig = figure((3.4 * len(panels), 2.8))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, recs in series.items():
            pts = [(r["step"], r[key]) for r in recs if key in r and "step" in r]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, label=name, linewidth=1.2, marker="o" if len(x) < 20 else None,
                        markersize=3)  # a short run logs few points: show them
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path, dpi: int = 80) -> Path:
    """Write ``fig`` as PNG atomically (a figure made by pyplot is closed too)."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot = sys.modules.get("matplotlib.pyplot")  # only when the caller already uses pyplot
    if pyplot is not None:
        pyplot.close(fig)
    return path
