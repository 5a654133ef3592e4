"""The dSprites rasteriser: exact binary sprites sampled at pixel centres.

dSprites (Matthey et al. 2017) is the source dataset of the paper's transfer experiments
(Dapueto et al. 2024, §4.1: "dSprites and its variants as source"). Our machines cannot
download it, so the sprites are regenerated here. The geometry below was reverse-engineered
from real frames (``tests/data``: the 320 frames of ``dsprites.gif`` and the 12 real
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
* heart: a polygon of 150 vertices on the classic curve
  ``x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t`` at ``t = 2πk/150``, mapped by
  ``u = 0.6 x``, ``v = −1.44 − 0.6622 y`` (its origin sits 1.44 px above the sprite centre
  and it spans ±9.6 px across, like the square). The smooth curve fits the frames only to
  316/320; the 150-gon fits all of them, with a feasible box of ±5e-5 (x scale),
  [-5e-5, +2e-4] (y scale) and ±1e-3 px (offset) around these round numbers.

With these numbers all 320 gif frames and all 12 real images are pixel-identical.

Speed: no sprite reaches further than 13.6 px from its centre (the square's corner; see
:func:`max_sprite_radius`), so each image evaluates only a 31x31 window, whose pixel centres
reach at least 14.5 px from the centre on every side (a quarter of the canvas), and copies it
into the 64x64 canvas.
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
HEART_VERTICES = 150
HEART_SCALE_X = 0.6
HEART_SCALE_Y = 0.6622
HEART_OFFSET_Y = -1.44

_WINDOW = 31  # pixels per side evaluated around each sprite centre, from floor(centre) - 15
_HALF_WINDOW = 15
WINDOW_REACH = 14.5  # every pixel centre within this distance of the centre is in the window


def sprite_centres(pos_x: np.ndarray, pos_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-space centre (column, row) of each sprite from position classes 0..31."""
    return 16.0 + 32.0 * POSITIONS[pos_x], 16.0 + 32.0 * POSITIONS[pos_y]


@functools.lru_cache(maxsize=1)
def _heart_branches() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The right half of the heart polygon as two branches x(y): (inner_y, inner_x, outer_y,
    outer_x).

    The polygon's vertices are the curve at t = 2πk/150. On the right half (k = 0..75) the
    vertices climb from the notch (k = 0) to the top of the lobe and then descend to the tip,
    each branch strictly monotone in y, so a point is inside iff
    ``inner(y) < |x| < outer(y)`` (``inner`` is -1 below the notch, where there is no hole).
    The interpolation between vertices *is* the polygon edge, so this test is exact.
    """
    t = 2.0 * np.pi * np.arange(HEART_VERTICES // 2 + 1) / HEART_VERTICES
    x = 16.0 * np.sin(t) ** 3
    y = 13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t)
    top = int(np.argmax(y))
    return y[: top + 1], x[: top + 1], y[top:][::-1].copy(), x[top:][::-1].copy()


def max_sprite_radius() -> float:
    """Largest distance from the sprite centre of any point of any sprite at scale 1."""
    inner_y, inner_x, outer_y, outer_x = _heart_branches()
    ys = np.concatenate([inner_y, outer_y])
    xs = np.concatenate([inner_x, outer_x])
    heart = np.hypot(HEART_SCALE_X * xs, HEART_OFFSET_Y - HEART_SCALE_Y * ys).max()
    return float(max(SQUARE_HALF_SIDE * np.sqrt(2.0), max(ELLIPSE_AXES), heart))


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
    inner_y, inner_x, outer_y, outer_x = _heart_branches()
    half_width = 16.0 * HEART_SCALE_X
    cand = np.flatnonzero(np.abs(u) < half_width)
    cy = (HEART_OFFSET_Y - v.reshape(-1)[cand]) / HEART_SCALE_Y
    cx = np.abs(u.reshape(-1)[cand]) / HEART_SCALE_X
    outer = np.interp(cy, outer_y, outer_x, left=-1.0, right=-1.0)
    inner = np.interp(cy, inner_y, inner_x, left=-1.0, right=-1.0)
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
