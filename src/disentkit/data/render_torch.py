"""Training batches made on the training device with torch operations (GPU data pipeline).

One CPU thread renders the noisy and scream dSprites at 3-5k pairs/s, which cannot feed a GPU
that trains an ensemble at tens of thousands of images/s. Here the synthetic sources of the
paper (Dapueto et al. 2024, §4.1: dSprites and its variants, the Shapes3D look-alike) are drawn
as whole batches on ``device``:

* dSprites: the exact rasteriser of :mod:`disentkit.data._dsprites_raster` in float64 over the
  whole canvas (the CPU code evaluates a 31x31 window; its tests show the window never cuts a
  sprite). The trigonometric tables and the heart's polygon come from the CPU module, and every
  expression is the CPU one, operation by operation (no fused kernels), so the masks are
  **bit-identical** to the CPU renderer's (``tests/test_render_torch.py``);
* the variants compose the mask exactly as :mod:`disentkit.data.dsprites_variants`: colour,
  uniform noise quantised to 256 levels, the scream crop + tint. The random nuisances come from a
  torch generator (a different stream from NumPy's: same distribution, other draws); given the
  same draws the composition is bit-identical (:func:`compose_noisy`, :func:`compose_scream`);
* Shapes3D: the 480 pre-rendered geometries of :class:`disentkit.data.shapes3d.Shapes3D` (weights
  and constant term) live on the device; an image is the same ``clip(albedo @ weights + const)``
  (equal to the CPU's to float32 rounding of a 3-term sum: the order of a BLAS sum may differ).

Pairs (:func:`sample_pairs`) follow :mod:`disentkit.data.pairs` for complete grids: ``k``
distinct varying factors per pair, each moved to a different value, uniformly.
"""

from __future__ import annotations

import numpy as np
import torch

from disentkit.data import _dsprites_raster as raster

#: names this module renders (the registry names of the datasets)
DSPRITES_FAMILY = ("dsprites", "white-dsprites", "color-dsprites", "noisy-dsprites",
                   "noisy-color-dsprites", "scream-dsprites")
SUPPORTED = DSPRITES_FAMILY + ("shapes3d",)


class DSpritesGeometry:
    """The rasteriser's constants on a device (float64), built once per device."""

    def __init__(self, device: torch.device | str):
        d = torch.device(device)
        f64 = dict(dtype=torch.float64, device=d)
        theta = raster.ORIENTATIONS
        self.cos = torch.as_tensor(np.cos(theta)[:, None] / raster.SCALES[None, :], **f64)
        self.sin = torch.as_tensor(np.sin(theta)[:, None] / raster.SCALES[None, :], **f64)
        self.centre = torch.as_tensor(16.0 + 32.0 * raster.POSITIONS, **f64)
        self.pixel = torch.arange(raster.CANVAS, **f64) + 0.5
        inner_y, inner_x, outer_y, outer_x = raster._heart_branches()
        self.heart = [torch.as_tensor(a, **f64) for a in (inner_y, inner_x, outer_y, outer_x)]
        self.device = d

    def masks(self, factors: torch.Tensor) -> torch.Tensor:
        """Binary sprites bool [n, 64, 64] for dSprites classes [n, >=5] (last five columns:
        shape, scale, orientation, posX, posY), as :func:`raster.render_masks`."""
        shape, scale, orient, pos_x, pos_y = (factors[:, i] for i in range(-5, 0))
        cx, cy = self.centre[pos_x], self.centre[pos_y]
        dx = (self.pixel[None, :] - cx[:, None])[:, None, :]  # [n, 1, 64]
        dy = (self.pixel[None, :] - cy[:, None])[:, :, None]  # [n, 64, 1]
        c = self.cos[orient, scale][:, None, None]
        s = self.sin[orient, scale][:, None, None]
        u = c * dx - s * dy
        v = s * dx + c * dy
        square = torch.maximum(u.abs(), v.abs()) < raster.SQUARE_HALF_SIDE
        a, b = raster.ELLIPSE_AXES
        ellipse = (u / a).square() + (v / b).square() < 1.0
        heart = self._heart(u, v)
        sel = shape[:, None, None]
        return torch.where(sel == 0, square, torch.where(sel == 1, ellipse, heart))

    def _heart(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        inner_y, inner_x, outer_y, outer_x = self.heart
        cy = (raster.HEART_OFFSET_Y - v) / raster.HEART_SCALE_Y
        cx = u.abs() / raster.HEART_SCALE_X
        outer = interp(cy, outer_y, outer_x, -1.0)
        inner = interp(cy, inner_y, inner_x, -1.0)
        return (u.abs() < 16.0 * raster.HEART_SCALE_X) & (cx < outer) & (cx > inner)


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor, outside: float) -> torch.Tensor:
    """``np.interp(x, xp, fp, left=outside, right=outside)`` with NumPy's formula
    ``slope·(x − xp[j]) + fp[j]`` (``fp[-1]`` at ``x == xp[-1]``), so results are bit-equal."""
    j = torch.clamp(torch.searchsorted(xp, x, right=True) - 1, 0, len(xp) - 2)
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    out = slope * (x - xp[j]) + fp[j]
    out = torch.where(x == xp[-1], fp[-1], out)
    return torch.where((x < xp[0]) | (x > xp[-1]), torch.full_like(out, outside), out)


def uniform_noise(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform noise quantised to 256 levels ``(k + 0.5) / 256`` (as the CPU variants)."""
    k = torch.randint(0, 256, shape, generator=generator, device=device, dtype=torch.uint8)
    return k.float() * np.float32(1.0 / 256.0) + np.float32(0.5 / 256.0)


def compose_noisy(mask: torch.Tensor, colour: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Sprite [n, 1, 64, 64] in ``colour`` [n, 3, 1, 1] over ``noise`` [n, 3, 64, 64]."""
    return torch.where(mask, colour, noise)


def compose_scream(mask, texture, top, left, tint) -> torch.Tensor:
    """Scream-dSprites from its draws: crop of ``texture`` [3, H, W] at (top, left) [n], tint
    [n, 3]; background ``(crop + tint) · 0.5``, sprite pixels inverted (float32, CPU order)."""
    span = torch.arange(64, device=texture.device)
    rows = (top[:, None] + span[None, :])[:, None, :, None]  # [n, 1, 64, 1]
    cols = (left[:, None] + span[None, :])[:, None, None, :]  # [n, 1, 1, 64]
    channel = torch.arange(3, device=texture.device)[None, :, None, None]
    out = texture[channel, rows, cols]  # [n, 3, 64, 64]
    out = (out + tint[:, :, None, None]) * 0.5
    return torch.where(mask, 1.0 - out, out)


class DeviceBatches:
    """Factors, images and weak-supervision pairs of a synthetic dataset, drawn on ``device``.

    ``dataset`` is a generated (``root=None``) dataset of :data:`SUPPORTED`; its constants go
    to the device once (Shapes3D: all 480 geometries are rendered on the CPU first, a few
    seconds). Every draw uses the torch ``generator`` passed in (on ``device``).
    """

    def __init__(self, dataset, device: torch.device | str = "cpu"):
        name = getattr(dataset, "name", type(dataset).__name__)
        if name not in SUPPORTED or getattr(dataset, "root", None) is not None:
            where = " read from a file" if name in SUPPORTED else ""
            raise ValueError(f"on-device batches need a generated dataset of "
                             f"{', '.join(SUPPORTED)}; found {name!r}{where}")
        self.name, self.device, self.source = name, torch.device(device), dataset
        self.sizes = torch.as_tensor(dataset.factor_sizes, dtype=torch.int64, device=self.device)
        self.image_shape = tuple(dataset.image_shape)
        if name == "shapes3d":
            dataset._ensure_rendered(np.arange(dataset.num_geometries))
            self.weights = torch.as_tensor(dataset._weights, device=self.device)
            self.const = torch.as_tensor(dataset._const, device=self.device)
            self.albedo = torch.as_tensor(dataset._albedo, device=self.device)
            return
        self.geometry = DSpritesGeometry(self.device)
        palette = getattr(dataset, "palette", np.ones((1, 1), np.float32))
        self.palette = torch.as_tensor(palette, device=self.device)
        if name == "scream-dsprites":
            from disentkit.data.dsprites_variants import scream_texture

            self.texture = torch.as_tensor(scream_texture(), device=self.device)

    def sample_factors(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` factor tuples, uniform over the (complete) grid: int64 [n, K]."""
        u = torch.rand((n, len(self.sizes)), generator=generator, device=self.device,
                       dtype=torch.float64)
        return torch.minimum((u * self.sizes).long(), self.sizes - 1)

    def images(self, factors: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Float32 [n, C, 64, 64] in [0, 1] for factor classes [n, K] on the device."""
        if self.name == "shapes3d":
            return self._shapes3d(factors)
        mask = self.geometry.masks(factors)[:, None]  # [n, 1, 64, 64]
        if self.name == "dsprites":
            return mask.float()
        colour = self.palette[factors[:, 0]][:, :, None, None]  # [n, 3, 1, 1]
        n = len(factors)
        if self.name in ("white-dsprites", "color-dsprites"):
            return mask * colour
        if self.name in ("noisy-dsprites", "noisy-color-dsprites"):
            noise = uniform_noise((n, 3, 64, 64), generator, self.device)
            return compose_noisy(mask, colour, noise)
        h, w = self.texture.shape[1:]
        top = torch.randint(0, h - 64, (n,), generator=generator, device=self.device)
        left = torch.randint(0, w - 64, (n,), generator=generator, device=self.device)
        tint = torch.rand((n, 3), generator=generator, device=self.device)
        return compose_scream(mask, self.texture, top, left, tint)

    def _shapes3d(self, factors: torch.Tensor) -> torch.Tensor:
        sizes = self.sizes
        geom = (factors[:, 3] * sizes[4] + factors[:, 4]) * sizes[5] + factors[:, 5]
        albedo = self.albedo[factors[:, :3]]  # [n, 3 surfaces, 3 rgb]
        out = torch.matmul(albedo.transpose(1, 2), self.weights[geom]) + self.const[geom]
        return out.clamp_(0.0, 1.0).reshape(len(factors), *self.image_shape)

    def pairs(self, n: int, generator: torch.Generator | None, k: int = 1) -> dict:
        """``n`` pairs differing in exactly ``k`` varying factors:
        ``{x1, x2, changed, factors1, factors2}``."""
        varying = self.sizes > 1
        if not 1 <= k <= int(varying.sum()):
            raise ValueError(f"k must lie in [1, {int(varying.sum())}] (the varying factors of "
                             f"{self.name}); found {k}")
        f1 = self.sample_factors(n, generator)
        keys = torch.rand(f1.shape, generator=generator, device=self.device)
        keys = torch.where(varying, keys, torch.full_like(keys, float("inf")))
        changed = keys.argsort(dim=1).argsort(dim=1) < k
        span = torch.clamp(self.sizes - 1, min=1)
        shift = 1 + (torch.rand(f1.shape, generator=generator, device=self.device,
                                dtype=torch.float64) * span).long().clamp_(max=span - 1)
        f2 = torch.where(changed, (f1 + shift) % self.sizes, f1)
        both = self.images(torch.cat([f1, f2]), generator)
        return {"x1": both[:n], "x2": both[n:], "changed": changed, "factors1": f1, "factors2": f2}
