"""Real Shapes3D frames from ``3dshapes.gif`` and their factors, to judge the look-alike renderer.

The public GIF (google-deepmind/3d-shapes, kept in ``tests/data``) shows 53 frames of
factor traversals, upscaled to about 222x222 with a 2-pixel grey frame. Its factors are not
tabulated; :data:`GIF_FACTORS` was read off the frames: orientation 0->14 on a cube, then the shape,
scale, object hue, wall hue and floor hue in turn (hues measured from the pixel colours, which
are exact tenths; geometry by eye). Used by the fidelity test and by
:func:`save_compare_figure` (``docs/figures/shapes3d_compare.png``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _gif_factors() -> np.ndarray:
    rows = []
    for i in range(53):
        orientation = min(i, 14)
        shape = 0 if i < 15 else 1 if i == 15 else 2 if i == 16 else 3
        scale = 0 if i < 18 else min(i - 17, 7)
        obj = (3 + max(i - 24, 0)) % 10 if i <= 33 else 2
        rows.append([0, 6, obj, scale, shape, orientation])
    table = np.array(rows, dtype=np.int64)
    wall = {34: 7, 35: 8, 36: 9, 37: 0, 38: 1, 43: 2, 44: 3, 45: 4}
    floor = {40: 1, 41: 2, 42: 3, 47: 4, 48: 5, 49: 6, 50: 7, 51: 8, 52: 9}
    for i in range(34, 53):
        table[i, 1] = wall.get(i, 5)
        table[i, 0] = floor.get(i, 0)
    return table


#: factor classes (floor_hue, wall_hue, object_hue, scale, shape, orientation) of each GIF frame
GIF_FACTORS = _gif_factors()


def gif_frames(path: str | os.PathLike) -> np.ndarray:
    """The GIF's frames as uint8 [n, 64, 64, 3]: grey frame cropped, box-filtered down to 64x64."""
    from PIL import Image

    frames = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            rgb = im.convert("RGB")
            inner = rgb.crop((2, 2, rgb.width - 2, rgb.height - 2))
            frames.append(np.asarray(inner.resize((64, 64), Image.BOX)))
    return np.stack(frames)


def save_compare_figure(
    gif_path: str | os.PathLike,
    out: str | os.PathLike,
    frames: tuple[int, ...] = (0, 4, 7, 14, 15, 16, 20, 28, 36, 44, 49),
    dataset=None,
) -> Path:
    """Side-by-side PNG: real GIF frames (top) above ours with the same factors (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from disentkit.data.shapes3d import FACTOR_NAMES, Shapes3D
    from disentkit.io import atomic_path

    real = gif_frames(gif_path)[list(frames)]
    factors = GIF_FACTORS[list(frames)]
    ds = dataset if dataset is not None else Shapes3D(supersample=4)
    ours = ds.images(factors).transpose(0, 2, 3, 1)
    fig, axes = plt.subplots(2, len(frames), figsize=(1.3 * len(frames), 3.1), squeeze=False)
    for j, (r, o, f) in enumerate(zip(real, ours, factors)):
        for row, img in enumerate((r, o)):
            ax = axes[row, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, j].set_xlabel(" ".join(str(v) for v in f), fontsize=6)
    axes[0, 0].set_ylabel("real (GIF)", fontsize=8)
    axes[1, 0].set_ylabel("disentkit", fontsize=8)
    fig.suptitle(
        "Shapes3D: real frames vs generated; factors " + ", ".join(FACTOR_NAMES), fontsize=8
    )
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out
