"""Image operations shared by the real-image loaders, above all the Coil-100-Augmented grid.

Coil-100-Augmented (Dapueto et al. 2024, §4.1 and appendix) adds two synthetic factors to each
Coil-100 view: an in-plane *rotation* (0, 20, …, 340 degrees, counter-clockwise about the canvas
centre) and then a *scale* (zoom about the centre by 1.00, 0.94, …, 0.50), both nearest-neighbour
with black fill, on the 128x128 canvas, then a resize to 64x64. The authors' build script does this
with two OpenCV ``warpAffine`` calls; here the same two nearest-neighbour inverse mappings are
composed *once* per (rotation, scale) into an index map, so a batch is one gather from the cached
base images plus the resize to 64x64 — numpy index arithmetic, no per-image Python work.

The resize is the paper's loader's: ``torchvision.transforms.Resize([64, 64], antialias=True)``
(bilinear with antialiasing, the same filter as Pillow's ``Image.resize(..., BILINEAR)`` when
shrinking). For the 2x reduction 128 -> 64 that is a separable triangle filter with taps
1, 3, 3, 1 (/8) per axis, renormalised where it reaches past the image edge (3, 3, 1 /7); see
:func:`aa_downsample_uint8`. The result is rounded to 8 bits (half up), so that generated images
equal images decoded from a pre-built release; the paper resizes in float, a difference of at
most 0.5/255 per pixel.

OpenCV conventions reproduced (so generated images equal the published release's):
the centre is ``(W/2, H/2)`` in pixel coordinates (pixel centres at integers), the angle is
counter-clockwise on screen, each stage maps a destination pixel back through the inverse matrix
and rounds to the nearest source pixel, and sources outside the canvas are black.
"""

from __future__ import annotations

import numpy as np

#: in-plane rotation classes, degrees counter-clockwise (18 values)
ROTATIONS_DEG: tuple[int, ...] = tuple(range(0, 360, 20))
#: zoom classes: ``np.linspace(1, 0.5, 9).round(2)``, as in the authors' build script (9 values)
SCALES: tuple[float, ...] = (1.0, 0.94, 0.88, 0.81, 0.75, 0.69, 0.62, 0.56, 0.5)


AB_BITS = 10  # OpenCV's fixed-point precision for warpAffine coordinates


def _cv_affine_inverse(size: int, angle_deg: float, zoom: float) -> np.ndarray:
    """``invertAffineTransform(getRotationMatrix2D((size/2, size/2), angle, zoom))``, in double."""
    c = size / 2.0
    alpha = np.cos(angle_deg * np.pi / 180.0) * zoom
    beta = np.sin(angle_deg * np.pi / 180.0) * zoom
    m = np.array([
        [alpha, beta, (1 - alpha) * c - beta * c],
        [-beta, alpha, beta * c + (1 - alpha) * c],
    ])
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22, a12, a21 = m[1, 1] * d, m[0, 0] * d, -m[0, 1] * d, -m[1, 0] * d
    b1 = -a11 * m[0, 2] - a12 * m[1, 2]
    b2 = -a21 * m[0, 2] - a22 * m[1, 2]
    return np.array([[a11, a12, b1], [a21, a22, b2]])


def _inverse_nearest(size: int, angle_deg: float, zoom: float):
    """Source (row, col) of each destination pixel for one OpenCV-style warp, and validity.

    ``warpAffine(..., INTER_NEAREST)`` inverts the matrix and evaluates source coordinates in
    fixed point: the x and y terms are each rounded to 1/1024 pixel, then the sum is rounded
    half up. Reproducing that (instead of ``floor(x + 0.5)`` in double) matters at 60/120/240/300
    degrees, where many coordinates fall exactly half-way between two pixels.
    Returns int arrays [size, size] and a bool mask of in-canvas sources.
    """
    inv = _cv_affine_inverse(size, angle_deg, zoom)
    scale = float(1 << AB_BITS)
    xs = np.arange(size, dtype=np.float64)
    adelta = np.rint(inv[0, 0] * xs * scale).astype(np.int64)  # per destination column
    bdelta = np.rint(inv[1, 0] * xs * scale).astype(np.int64)
    x0 = np.rint((inv[0, 1] * xs + inv[0, 2]) * scale).astype(np.int64)  # per destination row
    y0 = np.rint((inv[1, 1] * xs + inv[1, 2]) * scale).astype(np.int64)
    half = 1 << (AB_BITS - 1)
    col = (x0[:, None] + half + adelta[None, :]) >> AB_BITS
    row = (y0[:, None] + half + bdelta[None, :]) >> AB_BITS
    valid = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    return row, col, valid


def grid_index_map(size: int, angle_deg: float, zoom: float) -> np.ndarray:
    """Flat source index [size*size] of rotate-then-zoom, ``-1`` where the result is black.

    Two roundings, exactly as two successive nearest-neighbour warps: the zoom's source pixel
    is looked up in the rotated image, whose own source pixel is looked up in the original.
    """
    r_row, r_col, r_ok = _inverse_nearest(size, angle_deg, 1.0)
    z_row, z_col, z_ok = _inverse_nearest(size, 0.0, zoom)
    zr, zc = np.clip(z_row, 0, size - 1), np.clip(z_col, 0, size - 1)
    ok = z_ok & r_ok[zr, zc]
    flat = r_row[zr, zc] * size + r_col[zr, zc]
    return np.where(ok, flat, -1).reshape(-1)


#: map entry of a black (out-of-canvas) pixel: beyond any image, so ``take(mode="clip")`` lands on
#: the last pixel of the pixel array, which callers keep black (one spare zero image at the end)
BLACK = np.iinfo(np.int32).max


class RotationScaleGrid:
    """Precomputed index maps for every (rotation, scale) class on a ``size`` canvas.

    ``factor = size // out``: the augmented canvas is reduced by :func:`aa_downsample_uint8`
    (the paper's antialiased bilinear resize; ``factor = 1`` for the binary variant, augmented
    at 64). Maps take ``R*S*size*size`` int32s (10.6 MB for Coil-100's 128x128 canvas).
    """

    def __init__(self, size: int, out: int, angles=ROTATIONS_DEG, scales=SCALES):
        if size % out:
            raise ValueError(f"canvas {size} must be a multiple of the output size {out}")
        self.size, self.out, self.factor = size, out, size // out
        if self.factor > 1 and self.factor % 2:
            raise ValueError(f"canvas {size} / output {out}: the resize needs an even factor or 1")
        self.angles, self.scales = tuple(angles), tuple(scales)
        maps = np.empty((len(self.angles), len(self.scales), size * size), dtype=np.int32)
        for i, angle in enumerate(self.angles):
            for j, zoom in enumerate(self.scales):
                m = grid_index_map(size, angle, zoom)
                maps[i, j] = np.where(m < 0, BLACK, m)
        self.maps = maps

    #: images gathered and resized at once: their index block stays in the CPU cache
    chunk = 8

    def apply(self, pixels: np.ndarray, rows: np.ndarray, rotation, scale) -> np.ndarray:
        """Augment base images ``pixels[rows]`` and resize them: uint8 [n, out, out, C].

        ``pixels`` is [N + 1, size*size] (uint8 grey, C = 1, or uint32 holding packed RGBX bytes,
        C = 4) whose last row is black: out-of-canvas entries are clipped onto it, so the gather
        needs no mask. :func:`uint8_to_images` turns the result into float images.
        """
        rows = np.asarray(rows, dtype=np.int64)
        rotation, scale = np.asarray(rotation), np.asarray(scale)
        n, size, out = len(rows), self.size, self.out
        flat_pixels = pixels.reshape(-1)
        packed = pixels.dtype == np.uint32
        c = 4 if packed else 1
        result = np.empty((n, out, out, c), dtype=np.uint8)
        got = np.empty((self.chunk, size * size), dtype=pixels.dtype)
        for a in range(0, n, self.chunk):
            b = min(a + self.chunk, n)
            idx = self.maps[rotation[a:b], scale[a:b]]  # [k, size*size]
            flat = rows[a:b, None] * (size * size) + idx
            g = np.take(flat_pixels, flat, mode="clip", out=got[: b - a])
            canvas = g.view(np.uint8).reshape(b - a, size, size, c)  # RGBX bytes, or grey
            result[a:b] = aa_downsample_uint8(canvas, self.factor)
        return result


def uint8_to_images(img: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [n, H, W, C'] → float32 [n, channels, H, W] in [0, 1] (the first ``channels``)."""
    planar = img[..., :channels].transpose(0, 3, 1, 2)
    out = np.empty(planar.shape, dtype=np.float32)
    np.multiply(planar, np.float32(1.0 / 255.0), out=out, casting="unsafe")
    return out


def _aa_taps(factor: int) -> np.ndarray:
    """Integer weights of the antialiased bilinear (triangle) filter for an even ``factor``.

    Output pixel i is centred at input coordinate (i + 1/2)·f and the triangle has half-width f
    (Pillow's and torchvision's antialias rule: the support scales with the reduction). Input
    pixel j = f·i − f/2 + t, t = 0 … 2f−1, then weighs ``2f − |2t + 1 − 2f|``
    (1, 3, 3, 1 for f = 2).
    """
    t = np.arange(2 * factor)
    return (2 * factor - np.abs(2 * t + 1 - 2 * factor)).astype(np.uint16)


def _aa_axis(x: np.ndarray, factor: int, axis: int) -> np.ndarray:
    """Weighted sums along ``axis`` (uint16), zero-padded by f/2: taps past the edge add 0."""
    taps, half = _aa_taps(factor), factor // 2
    x = np.moveaxis(x, axis, 0)
    n_out = x.shape[0] // factor
    padded = np.zeros((x.shape[0] + 2 * half,) + x.shape[1:], dtype=np.uint16)
    padded[half : half + x.shape[0]] = x
    acc = np.zeros((n_out,) + x.shape[1:], dtype=np.uint16)
    for t, w in enumerate(taps):
        acc += padded[t : t + factor * n_out : factor] * w
    return np.moveaxis(acc, 0, axis)


def aa_downsample_uint8(img: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [..., H, W, C] → [..., H/f, W/f, C]: the paper's antialiased bilinear resize.

    Equals ``torch.nn.functional.interpolate(x, scale_factor=1/f, mode="bilinear",
    antialias=True)`` (what ``torchvision.transforms.Resize(antialias=True)`` runs) on the same
    image, rounded half up to 8 bits; near the border the weights past the edge are dropped and
    the rest renormalised, as there. Integer arithmetic: sums stay below 2^16 for f = 2 (64·255).
    """
    if factor == 1:
        return img.astype(np.uint8)
    *lead, h, w, c = img.shape
    if h % factor or w % factor:
        raise ValueError(f"image {h}x{w} is not a multiple of {factor}")
    sums = _aa_axis(_aa_axis(img, factor, -3), factor, -2)
    ones_h = _aa_axis(np.ones((h, 1), dtype=np.uint8), factor, 0)[:, 0].astype(np.uint32)
    ones_w = _aa_axis(np.ones((w, 1), dtype=np.uint8), factor, 0)[:, 0].astype(np.uint32)
    norm = (ones_h[:, None] * ones_w[None, :])[:, :, None]  # [H/f, W/f, 1]
    return ((sums + norm // 2) // norm).astype(np.uint8)


# ---------------------------------------------------------------------- Coil-100 silhouettes


def _otsu_binary(img: np.ndarray) -> np.ndarray:
    """``cv2.threshold(img, 0, 255, THRESH_BINARY + THRESH_OTSU)``: 255 above Otsu's level."""
    from skimage.filters import threshold_otsu

    if img.min() == img.max():
        return np.zeros_like(img)
    return np.where(img > threshold_otsu(img), 255, 0).astype(np.uint8)


def silhouette(rgb: np.ndarray) -> np.ndarray:
    """Coil-100-Augmented-Binary's silhouette recipe: uint8 [128, 128(, 3)] → {0, 255} [64, 64].

    Greyscale (ITU-R 601, as ``cv2.COLOR_BGR2GRAY``) → 5x5 median blur → Otsu threshold → 5x5
    morphological closing → area resize to 64x64 (rounded to uint8) → Otsu again.
    """
    from scipy import ndimage

    if rgb.ndim == 3:
        grey = to_uint8(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)
    else:
        grey = rgb
    blurred = ndimage.median_filter(grey, size=5, mode="nearest")
    binary = _otsu_binary(blurred)
    closed = ndimage.grey_closing(binary, size=(5, 5), mode="nearest")
    small = area_downsample_uint8(closed[..., None], closed.shape[0] // 64)[..., 0]
    return _otsu_binary(small)


# ---------------------------------------------------------------------- generic image helpers


def area_downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor x factor`` blocks of an [..., H, W, C] array (float64).

    For integer factors this is OpenCV's ``INTER_AREA``: the antialiased resize of the issue.
    """
    if factor == 1:
        return img.astype(np.float64)
    *lead, h, w, c = img.shape
    if h % factor or w % factor:
        raise ValueError(f"image {h}x{w} is not a multiple of {factor}")
    blocks = img.reshape(*lead, h // factor, factor, w // factor, factor, c)
    return blocks.mean(axis=(-4, -2))


def area_downsample_uint8(img: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [..., H, W, C] → block means rounded half up (OpenCV ``INTER_AREA`` on uint8)."""
    if factor == 1:
        return img.astype(np.uint8)
    *lead, h, w, c = img.shape
    blocks = img.reshape(*lead, h // factor, factor, w // factor, factor, c)
    total = blocks.sum(axis=(-4, -2), dtype=np.uint32)
    n = factor * factor
    return ((total + n // 2) // n).astype(np.uint8)


def resize_to(img: np.ndarray, size: int) -> np.ndarray:
    """Antialiased resize of an [H, W, C] float image to [size, size, C] (area where possible).

    Integer ratios use an exact block mean; other ratios use Pillow's box filter (area) when
    shrinking and bilinear interpolation when enlarging, channel by channel in float.
    """
    h, w, c = img.shape
    if h == w == size:
        return img.astype(np.float64)
    if h == w and h % size == 0:
        return area_downsample(img, h // size)
    from PIL import Image

    resample = Image.Resampling.BOX if min(h, w) >= size else Image.Resampling.BILINEAR
    planes = [
        np.asarray(Image.fromarray(img[..., k].astype(np.float32), mode="F").resize(
            (size, size), resample=resample))
        for k in range(c)
    ]
    return np.stack(planes, axis=-1).astype(np.float64)


def pad_to_square(img: np.ndarray) -> np.ndarray:
    """Centre an [H, W, C] image on a black square of side max(H, W) (odd extra pixel last).

    The authors' RGB-D loader swaps height and width when computing this padding; here the
    shorter side is the one padded.
    """
    h, w = img.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side) + img.shape[2:], dtype=img.dtype)
    out[top : top + h, left : left + w] = img
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 255] → uint8, rounded."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """float [n, C, H, W] → [n, channels, H, W]: grey is replicated, RGB → ITU-R 601 luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=1)
    if have == 3 and channels == 1:
        w = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
        return (images * w).sum(axis=1, keepdims=True, dtype=np.float32)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def check_channels(channels: int) -> int:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, found {channels!r}")
    return int(channels)


def read_image(path) -> np.ndarray:
    """Decode an image file with Pillow: [H, W] (grey, uint8 or uint16) or [H, W, 3] uint8.

    Palette and alpha images become RGB; 16-bit PNGs keep their 16 bits (RGB-D depth).
    """
    from PIL import Image

    from disentkit.errors import reading

    with reading(path, "an image", "a PNG or JPEG file Pillow can decode"), Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im, dtype=np.uint16) if im.mode != "I" else np.asarray(im).astype(
                np.uint16)
        if im.mode == "L":
            return np.asarray(im, dtype=np.uint8)
        if im.mode == "1":
            return np.asarray(im.convert("L"), dtype=np.uint8)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
