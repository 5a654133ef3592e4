"""The dSprites rasteriser: exact binary sprites sampled at pixel centres.

dSprites (Matthey et al. 2017) is the source dataset of the paper's transfer experiments
(Dapueto et al. 2024, §4.1: "dSprites and its variants as source"). Our machines cannot
download it, so the sprites are regenerated here. The geometry below was reverse-engineered
from real frames (``../shared/reference``: the 320 frames of ``dsprites.gif`` and the 12 real
images of ``dsprites_subset12.npz``) by fitting each shape's parameters with linear programs
and fine grid searches on the inside/outside label of every pixel:

* Coordinates are pixels, pixel ``i`` covers ``[i, i+1)`` and is sampled at ``i + 0.5``.
* The sprite centre is ``16 + 32 * pos`` on each axis (posX → column, posY → row), so the 32
  positions step by 32/31 px and sprites sit at sub-pixel offsets.
* A sprite is scaled by ``scale`` and rotated *counter-clockwise on screen* by ``orientation``
  about its centre: the sprite-frame coordinates of a pixel are
  ``u = ( cos θ dx - sin θ dy) / scale``, ``v = (sin θ dx + cos θ dy) / scale``.
* square: ``max(|u|, |v|) < 9.5996`` (side 0.3 of the image; the fitted feasible interval
  is (9.59934, 9.59985), i.e. a hair under 0.3·64/2 = 9.6);
* ellipse: ``(u/12.76557)² + (v/7.212155)² < 1`` (semi-axes feasible to ±1.5e-4 px);
* heart: the classic curve ``x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t``
  mapped by ``u = 0.599614 x``, ``v = −1.436353 − 0.662207 y`` (so its origin sits 1.44 px
  above the sprite centre and it spans the same ±9.6 px box as the square).

With these numbers 316 of the 320 gif frames are pixel-identical (the 4 others differ by two
pixels each, all one duplicated heart at scale 0.9) and all 12 real images are identical.

Speed: a sprite never reaches further than 15 px from its centre, so each image evaluates
only a 30x30 window (about a fifth of the canvas) and scatters it into the 64x64 canvas.
"""

from __future__ import annotations

import functools

import numpy as np

CANVAS = 64
#: factor values of the public file (SOURCES.md): scale, orientation (both ends), position
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
SHAPES = ("square", "ellipse", "heart")

SQUARE_HALF_SIDE = 9.5996
ELLIPSE_AXES = (12.76557, 7.212155)
HEART_SCALE_X = 0.599614
HEART_SCALE_Y = 0.662207
HEART_OFFSET_Y = -1.436353

_WINDOW = 30  # pixels per side evaluated around each sprite centre
_HALF_WINDOW = 15


def sprite_centres(pos_x: np.ndarray, pos_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-space centre (column, row) of each sprite from position classes 0..31."""
    return 16.0 + 32.0 * POSITIONS[pos_x], 16.0 + 32.0 * POSITIONS[pos_y]


_HEART_TABLE_SIZE = 1 << 17


@functools.lru_cache(maxsize=1)
def _heart_tables() -> tuple[float, float, np.ndarray, np.ndarray]:
    """Half-widths of the heart curve on a uniform grid of heights: (y0, step, inner, outer).

    On the right half (t in [0, π]) the curve climbs from the notch (t = 0) to the top of the
    lobe and then descends monotonically to the tip; each branch is a function x(y), so a
    point is inside iff ``inner(y) < |x| < outer(y)``. A uniform table makes the lookup an
    index computation instead of a binary search (30x faster); with 2^17 rows over the
    curve's 29 units of height the interpolation error is below 1e-6 px except within 1e-4 px
    of the lobes' tops.
    Heights outside a branch get -1, so ``inner`` is -1 below the notch (no hole there).
    """
    t = np.linspace(0.0, np.pi, 400_001)
    x = 16.0 * np.sin(t) ** 3
    y = 13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t)
    top = int(np.argmax(y))
    grid = np.linspace(y.min(), y.max(), _HEART_TABLE_SIZE)
    inner = np.interp(grid, y[: top + 1], x[: top + 1], left=-1.0, right=-1.0)
    outer = np.interp(grid, y[top:][::-1], x[top:][::-1], left=-1.0, right=-1.0)
    # one extra row so that index+1 is always valid; -1 beyond the top
    inner = np.append(inner, -1.0)
    outer = np.append(outer, -1.0)
    return float(grid[0]), float(grid[1] - grid[0]), inner, outer


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean inside-test of one shape in sprite coordinates (scale and rotation removed)."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) < SQUARE_HALF_SIDE
    if shape == 1:
        a, b = ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 < 1.0
    return _inside_heart(u, v)


def _inside_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Heart inside-test; only points within the heart's bounding box pay for the lookup."""
    y0, step, inner_t, outer_t = _heart_tables()
    # row of the table: ((HEART_OFFSET_Y - v) / HEART_SCALE_Y - y0) / step, folded
    pos = ((HEART_OFFSET_Y / HEART_SCALE_Y - y0) / step) - v * (1.0 / (HEART_SCALE_Y * step))
    half_width = 16.0 * HEART_SCALE_X
    cand = np.flatnonzero((pos >= 0) & (pos < _HEART_TABLE_SIZE - 1) & (np.abs(u) < half_width))
    p = pos.reshape(-1)[cand]
    i = p.astype(np.int64)
    frac = p - i
    outer = outer_t[i] + frac * (outer_t[i + 1] - outer_t[i])
    inner = inner_t[i] + frac * (inner_t[i + 1] - inner_t[i])
    cx = np.abs(u.reshape(-1)[cand]) * (1.0 / HEART_SCALE_X)
    out = np.zeros(u.shape, dtype=bool)
    out.reshape(-1)[cand] = (cx < outer) & (cx > inner)
    return out


def render_masks(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    pos_x: np.ndarray,
    pos_y: np.ndarray,
    window: bool = True,
) -> np.ndarray:
    """Binary sprites bool [n, 64, 64] for factor classes (each an int array [n]).

    ``window=False`` evaluates the whole canvas (slow; used by tests to check that the window
    never cuts a sprite).
    """
    shape, scale, orientation, pos_x, pos_y = (
        np.asarray(a, dtype=np.int64) for a in (shape, scale, orientation, pos_x, pos_y)
    )
    n = len(shape)
    out = np.zeros((n, CANVAS, CANVAS), dtype=bool)
    if n == 0:
        return out
    cx, cy = sprite_centres(pos_x, pos_y)
    if window:
        col0 = np.floor(cx).astype(np.int64) - _HALF_WINDOW
        row0 = np.floor(cy).astype(np.int64) - _HALF_WINDOW
        span = np.arange(_WINDOW)
    else:
        col0 = row0 = np.zeros(n, dtype=np.int64)
        span = np.arange(CANVAS)
    cols = col0[:, None] + span[None, :]  # [n, W]
    rows = row0[:, None] + span[None, :]
    dx = (cols + 0.5 - cx[:, None])[:, None, :]  # [n, 1, W]
    dy = (rows + 0.5 - cy[:, None])[:, :, None]  # [n, W, 1]
    theta = ORIENTATIONS[orientation]
    cos = (np.cos(theta) / SCALES[scale])[:, None, None]
    sin = (np.sin(theta) / SCALES[scale])[:, None, None]
    inside = np.empty((n, len(span), len(span)), dtype=bool)
    for s in np.unique(shape):
        idx = np.flatnonzero(shape == s)
        c, si, ddx, ddy = cos[idx], sin[idx], dx[idx], dy[idx]
        u = c * ddx - si * ddy
        v = si * ddx + c * ddy
        inside[idx] = _inside(int(s), u, v)
    w = len(span)
    for k in range(n):  # one slice copy per image: cheaper than a fancy-indexed scatter
        out[k, row0[k] : row0[k] + w, col0[k] : col0[k] + w] = inside[k]
    return out
