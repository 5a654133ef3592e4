"""Coins-Augmented: a real-photo target that ships with scikit-image, so it needs no download.

The paper's real targets (Coil-100-Augmented, RGB-D Objects; Dapueto et al. 2024, §4.1) must be
downloaded by the user. For runs on a fresh machine disentkit builds its own small real target from
the photograph ``skimage.data.coins()`` (24 Greek coins on a dark background, 303x384 grey; no
known copyright restrictions, Brooklyn Museum Collection): each coin is segmented, centred on a
black 128x128 canvas, and given Coil-100-Augmented's in-plane rotation (18) and scale (9) grid
with exactly the same code, so it is Coil-100-Augmented with 24 objects and no turntable pose.

What it is: real photographic texture and shading, with two exactly known geometric factors and
one categorical factor (coin identity, which also carries each coin's size and design).
What it is not: there is no out-of-plane pose, no colour (the photograph is grey), the lighting
is fixed, and rotations are synthetic — so it tests the transfer of rotation/scale/identity, not
of 3-D viewpoint.

Channels: 3 by default, the grey value replicated, because the project's default source
(Color-dSprites) has 3 channels; ``channels=1`` gives the grey image.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from disentkit.data import cache as cache_mod
from disentkit.data._augment import (
    ROTATIONS_DEG,
    SCALES,
    RotationScaleGrid,
    check_channels,
    convert_channels,
    resize_to,
    to_uint8,
    uint8_to_images,
)
from disentkit.data.base import FactorDataset
from disentkit.errors import DisentkitError

N_COINS = 24
CANVAS = 128
OUT = 64
#: margin around the largest coin's bounding box, so that rotations keep every coin whole
MARGIN = 1.15


def segment_coins(photo: np.ndarray) -> np.ndarray:
    """Label image [H, W] of the coins (1..24, reading order), background 0.

    Region-based segmentation (the scikit-image gallery's recipe): markers from sure background
    (< 30) and sure coin (> 150) grey levels, a watershed on the Sobel gradient, holes filled,
    specks (< 200 px) removed. Raises if the count is not 24 (a different photograph).
    """
    from scipy import ndimage
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    markers = np.zeros(photo.shape, dtype=np.int32)
    markers[photo < 30] = 1
    markers[photo > 150] = 2
    coins = watershed(sobel(photo), markers) == 2
    coins = ndimage.binary_fill_holes(ndimage.binary_opening(coins, iterations=2))
    labels, n = ndimage.label(coins)
    sizes = ndimage.sum_labels(coins, labels, index=np.arange(1, n + 1))
    keep = np.flatnonzero(sizes >= 200) + 1
    relabel = np.zeros(n + 1, dtype=np.int32)
    relabel[keep] = np.arange(1, len(keep) + 1)
    labels = relabel[labels]
    if len(keep) != N_COINS:
        raise DisentkitError(
            f"segmenting skimage.data.coins() found {len(keep)} coins, expected {N_COINS}; "
            "the photograph shipped with this scikit-image differs from the known one"
        )
    return labels


def coin_crops(photo: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 [24, 128, 128]: each coin centred on black, all crops at one common scale.

    One window side for every coin (the largest bounding box times :data:`MARGIN`) keeps the
    coins' relative sizes; pixels outside the coin's own mask (background, neighbours) are black.
    Each mask is replaced by its convex hull: coins are convex, and the threshold misses dark
    patches on a coin's rim.
    """
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    index = np.arange(1, N_COINS + 1)
    boxes = ndimage.find_objects(labels)
    side = int(np.ceil(max(max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in boxes)
                       * MARGIN))
    centres = ndimage.center_of_mass(labels > 0, labels, index)
    padded = np.pad(photo, side, mode="constant")
    lab_padded = np.pad(labels, side, mode="constant")
    crops = np.empty((N_COINS, CANVAS, CANVAS), dtype=np.uint8)
    for k, (cy, cx) in enumerate(centres):
        top = int(round(cy - side / 2)) + side
        left = int(round(cx - side / 2)) + side
        window = padded[top : top + side, left : left + side].astype(np.float64)
        mask = convex_hull_image(lab_padded[top : top + side, left : left + side] == k + 1)
        crops[k] = to_uint8(resize_to((window * mask)[..., None], CANVAS)[..., 0])
    return crops


class CoinsAugmented(FactorDataset):
    """Coins-Augmented: coin 24 x in-plane rotation 18 x scale 9, from ``skimage.data.coins()``.

    The rotation/scale grid is Coil-100-Augmented's (rotate 0, 20, …, 340 degrees
    counter-clockwise, then zoom 1.00 … 0.50, nearest-neighbour on a 128x128 black canvas, then
    Coil-100's antialiased bilinear resize to 64x64). The 24 base crops are cached like
    Coil-100's views.
    """

    thread_safe_images = True  # images() reads arrays loaded at construction

    name = "coins-augmented"
    factor_names = ("coin", "rotation", "scale")
    factor_sizes = (N_COINS, len(ROTATIONS_DEG), len(SCALES))
    #: what each factor is and what else varies (disentkit.data.kinds)
    factor_kinds = {"coin": "identity", "rotation": "rotation", "scale": "scale"}
    nuisances: tuple[str, ...] = ("texture",)
    image_shape = (3, 64, 64)
    synthetic = False
    source = "skimage.data.coins() photograph, segmented; ships with scikit-image (no download)"

    def __init__(self, cache_dir: str | os.PathLike | None = None, channels: int = 3):
        self.channels = check_channels(channels)
        self.image_shape = (self.channels, OUT, OUT)
        self._pixels = self._base_cache(cache_dir)
        self._grid = RotationScaleGrid(CANVAS, OUT)

    @staticmethod
    def _base_cache(cache_dir) -> np.ndarray:
        import skimage.data

        photo = skimage.data.coins()
        recipe = {"what": "coins crops 128", "version": 1, "margin": MARGIN,
                  "photo": hashlib.sha256(photo.tobytes()).hexdigest()}

        def build(out):
            out[:N_COINS] = coin_crops(photo, segment_coins(photo))

        arr = cache_mod.cached_array(
            "coins-augmented-crops128", cache_mod.fingerprint_key(recipe),
            (N_COINS + 1, CANVAS, CANVAS), build, cache_dir,
        )
        return arr.reshape(N_COINS + 1, -1)

    def images(self, factors, rng=None) -> np.ndarray:
        f = self.check_factors(factors)
        small = self._grid.apply(self._pixels, f[:, 0], f[:, 1], f[:, 2])
        return convert_channels(uint8_to_images(small, 1), self.channels)

    def factor_values(self) -> dict[str, np.ndarray]:
        return {
            "coin": np.arange(N_COINS),
            "rotation": np.array(ROTATIONS_DEG),  # degrees, counter-clockwise
            "scale": np.array(SCALES),
        }
