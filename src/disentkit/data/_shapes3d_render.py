"""Numpy ray caster for the Shapes3D look-alike (private helper of :mod:`disentkit.data.shapes3d`).

The public Shapes3D images (Burgess & Kim 2018, rendered with MuJoCo) show one object resting on
the floor of an open room corner under a light-blue sky, lit by one shadow-casting light, with the
camera orbiting the object (the ``orientation`` factor). Dapueto et al. 2024 use Shapes3D as a
source and target dataset (Sec. 4, Tab. 1), so what matters for the paper is that each factor moves
the same pixels in the same way as in the original; this module reproduces that geometry and
shading closely enough to look alike, not MuJoCo's exact pixels.

Why weights and not pictures: albedos are the only thing the three hue factors change, and shading
is linear in albedo. So each of the 480 geometry configurations (scale x shape x orientation) is
rendered once into per-pixel *weights* of the three coloured surfaces (floor, walls, object) plus a
colour-independent term (sky and white specular highlights); an image is then
``clip(weights @ albedos + constant)``, a tiny matrix product per batch.

Conventions: scene frame x right, y up, z away from the camera at azimuth 0; floor y = 0; the object
stands on the floor at the origin, axis-aligned. The camera and the light orbit the object together
by the azimuth (so, as in the originals, the light keeps its place in the picture and the room
turns).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from disentkit.data._shapes3d_geometry import (SHAPES, SceneParams, _pixel_mean, _room, camera_rays,
                                               intersect_object)


# ------------------------------------------------------------------------------------ shading
@dataclasses.dataclass
class View:
    """Everything about one camera azimuth that does not depend on the object (room, light).

    Arrays are per sample (``size*size*ss*ss``); ``weights``/``const`` are the object-free picture
    at pixel resolution, into which :func:`render_weights` pastes the object's window.
    """

    size: int
    supersample: int
    origin: np.ndarray
    dirs: np.ndarray
    rot: np.ndarray
    light: np.ndarray  # in the scene frame
    light_axis: np.ndarray  # unit spot axis, scene frame
    surface: np.ndarray  # 0 floor, 1 wall, 2 sky
    points: np.ndarray
    normals: np.ndarray
    base_shade: np.ndarray  # ambient + headlight (no shadow)
    direct: np.ndarray  # shadow-casting light's contribution when unoccluded
    weights: np.ndarray  # [3, size*size]
    const: np.ndarray  # [3, size*size]


def _direct_light(p: SceneParams, light, axis, points, normals, coef):
    """Lambert term of the point light times its spot falloff around ``axis`` (unit vector)."""
    to_light = light - points
    dist = np.linalg.norm(to_light, axis=-1)
    l_dir = to_light / dist[:, None]
    cos_l = np.clip((normals * l_dir).sum(-1), 0.0, None)
    spot = np.clip((-l_dir * axis).sum(-1), 0.0, None) ** p.light_spot_exponent
    return coef * cos_l * spot, l_dir, dist


def _headlight_cos(p: SceneParams, rot: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Lambert term of MuJoCo's headlight: a directional light along the viewing axis, so a
    plane has one brightness (what makes the side walls uniformly darker than the back wall)."""
    pitch = math.radians(p.camera_pitch_deg)
    forward = rot @ np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    return np.clip(-(normals @ forward), 0.0, None)


def _coef(values, surface_ids):
    return np.asarray(values, dtype=float)[surface_ids]


def render_view(p: SceneParams, azimuth_deg: float, size: int = 64, supersample: int = 4) -> View:
    """Room, sky and unshadowed lighting for one azimuth (shared by the 32 objects seen from it)."""
    origin, d, rot = camera_rays(p, azimuth_deg, size, supersample)
    t, surface, normals = _room(p, origin, d)
    points = origin + np.where(surface != 2, t, 0.0)[:, None] * d
    sid = np.minimum(surface, 1)  # sky rows get wall coefficients, masked out below
    cos_h = _headlight_cos(p, rot, normals)
    light = rot @ np.asarray(p.light, dtype=float)
    axis = rot @ np.asarray(p.light_target, dtype=float) - light
    axis /= np.linalg.norm(axis)
    base = _coef(p.ambient, sid) + _coef(p.headlight, sid) * cos_h
    direct, _, _ = _direct_light(p, light, axis, points, normals, _coef(p.diffuse, sid))
    shade = base + direct
    w = np.zeros((3, d.shape[0]))
    w[0] = np.where(surface == 0, shade, 0.0)
    w[1] = np.where(surface == 1, shade, 0.0)
    const = np.asarray(p.sky, dtype=float)[:, None] * (surface == 2)
    return View(
        size, supersample, origin, d, rot, light, axis, surface, points, normals, base, direct,
        _pixel_mean(w, size, supersample), _pixel_mean(const, size, supersample),
    )


def object_extent(p: SceneParams, shape: int, scale: float) -> tuple[float, float]:
    """Horizontal half extent and height of the object's axis-aligned bounding box."""
    if shape == 0:
        return p.cube_half * scale, 2 * p.cube_half * scale
    if shape == 1:
        return p.cylinder_radius * scale, p.cylinder_height * scale
    if shape == 2:
        return p.sphere_radius * scale, 2 * p.sphere_radius * scale
    if shape == 3:
        return p.capsule_radius * scale, (2 * p.capsule_radius + p.capsule_length) * scale
    raise ValueError(f"shape class must be in [0, {len(SHAPES)}), found {shape}")


def _project(p: SceneParams, view: View, pts: np.ndarray):
    """Pixel (row, col) of scene points, and whether all lie in front of the camera."""
    pitch = math.radians(p.camera_pitch_deg)
    fwd = view.rot @ np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    up = view.rot @ np.array([0.0, math.cos(pitch), math.sin(pitch)])
    right = view.rot @ np.array([1.0, 0.0, 0.0])
    rel = pts - view.origin
    depth = rel @ fwd
    t = math.tan(math.radians(p.fov_deg) / 2.0)
    safe = np.where(depth > 1e-6, depth, 1.0)
    col = ((rel @ right) / safe / t + 1.0) / 2.0 * view.size
    row = (1.0 - (rel @ up) / safe / t) / 2.0 * view.size
    return row, col, bool(np.all(depth > 1e-6))


def object_window(
    p: SceneParams, view: View, shape: int, scale: float
) -> tuple[int, int, int, int]:
    """Pixel rows/cols [r0, r1) x [c0, c1) that can show the object or its shadow.

    The object lies inside its bounding box; its shadow lies inside the box's shadow volume, whose
    visible part projects inside the hull of the box corners and their shadows on the floor
    (a shadow on a wall lies between the two along each light ray). Outside the window the
    object-free :class:`View` is exact, so only the window needs ray casting.
    """
    half, height = object_extent(p, shape, scale)
    corners = np.array(
        [[x, y, z] for x in (-half, half) for y in (0.0, height) for z in (-half, half)]
    )
    light = view.light
    pts = [corners]
    if np.all(light[1] > corners[:, 1] + 1e-6):
        k = light[1] / (light[1] - corners[:, 1])
        pts.append(light + (corners - light) * k[:, None])
    else:  # light below the object's top: the shadow can reach anywhere
        return 0, view.size, 0, view.size
    row, col, in_front = _project(p, view, np.concatenate(pts))
    if not in_front:
        return 0, view.size, 0, view.size
    clip = lambda v: int(min(max(v, 0), view.size))  # noqa: E731
    return (
        clip(math.floor(row.min()) - 1), clip(math.ceil(row.max()) + 1),
        clip(math.floor(col.min()) - 1), clip(math.ceil(col.max()) + 1),
    )


def render_weights(
    p: SceneParams,
    shape: int,
    scale: float,
    azimuth_deg: float,
    size: int = 64,
    supersample: int = 4,
    view: View | None = None,
    window: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one geometry into (weights float32 [3, size*size], constant float32 [3, size*size]).

    ``weights[s]`` is the anti-aliased shading of surface ``s`` (floor, wall, object) at each pixel,
    so that the image is ``clip(albedo.T @ weights + constant)`` with albedo [3 surfaces, 3 RGB];
    ``constant`` holds the sky and the object's white highlight. ``view`` reuses the room of this
    azimuth; ``window=False`` ray-casts every pixel (the reference the window is tested against).
    """
    if view is None:
        view = render_view(p, azimuth_deg, size, supersample)
    ss = supersample
    r0, r1, c0, c1 = object_window(p, view, shape, scale) if window else (0, size, 0, size)
    weights = view.weights.reshape(3, size, size).copy()
    const = view.const.reshape(3, size, size).copy()
    if r1 <= r0 or c1 <= c0:
        return weights.reshape(3, -1).astype(np.float32), const.reshape(3, -1).astype(np.float32)
    n = size * ss
    grid = np.arange(n * n).reshape(n, n)
    idx = grid[r0 * ss : r1 * ss, c0 * ss : c1 * ss].ravel()
    d = view.dirs[idx]
    surface = view.surface[idx].copy()
    points = view.points[idx].copy()
    normals = view.normals[idx].copy()
    base = view.base_shade[idx].copy()
    direct = view.direct[idx].copy()

    t_obj, n_obj = intersect_object(p, shape, scale, view.origin, d)
    t_room = np.where(surface != 2, np.linalg.norm(points - view.origin, axis=-1), np.inf)
    on_obj = t_obj < t_room
    surface[on_obj] = 3
    points[on_obj] = view.origin + t_obj[on_obj, None] * d[on_obj]
    normals[on_obj] = n_obj[on_obj]
    cos_h = _headlight_cos(p, view.rot, normals[on_obj])
    base[on_obj] = p.ambient[2] + p.headlight[2] * cos_h
    direct_obj, l_dir_obj, _ = _direct_light(
        p, view.light, view.light_axis, points[on_obj], normals[on_obj], p.diffuse[2]
    )
    direct[on_obj] = direct_obj

    # shadow rays towards the light, tested against the object only (the room casts no shadow
    # on itself under a light inside it); the offset along the normal avoids self-hits
    lit = surface != 2
    to_light = view.light - points[lit]
    dist = np.linalg.norm(to_light, axis=-1)
    l_dir = to_light / dist[:, None]
    t_sh, _ = intersect_object(p, shape, scale, points[lit] + normals[lit] * 1e-3, l_dir)
    visible = np.ones(len(d))
    visible[lit] = t_sh >= dist
    shade = base + visible * direct

    spec = np.zeros(len(d))
    if on_obj.any():
        half_v = l_dir_obj - d[on_obj]
        half_v /= np.linalg.norm(half_v, axis=-1, keepdims=True)
        cos_n = np.clip((normals[on_obj] * half_v).sum(-1), 0.0, None)
        # weighted by the Lambert term, so the highlight fades out at the terminator instead of
        # ending in a hard line (a broad Phong lobe cut by a step shows one)
        cos_l = np.clip((normals[on_obj] * l_dir_obj).sum(-1), 0.0, None)
        spec[on_obj] = p.specular * visible[on_obj] * cos_l * cos_n**p.shininess

    w = np.zeros((3, len(d)))
    for k, sid in enumerate((0, 1, 3)):
        w[k] = np.where(surface == sid, shade, 0.0)
    c = np.asarray(p.sky, dtype=float)[:, None] * (surface == 2) + spec[None, :]
    h, wd = r1 - r0, c1 - c0
    weights[:, r0:r1, c0:c1] = _window_mean(w, h, wd, ss)
    const[:, r0:r1, c0:c1] = _window_mean(c, h, wd, ss)
    return weights.reshape(3, -1).astype(np.float32), const.reshape(3, -1).astype(np.float32)


def _window_mean(x: np.ndarray, h: int, w: int, ss: int) -> np.ndarray:
    """Average the ss x ss samples of each pixel of an h x w window: [k, h*w*ss*ss] -> [k, h, w]."""
    return x.reshape(x.shape[0], h, ss, w, ss).mean(axis=(2, 4))


def hsv_albedo(hue: np.ndarray) -> np.ndarray:
    """RGB of HSV(hue, 1, 1) for hues in [0, 1): float [..., 3] (the originals' albedos)."""
    h6 = (np.asarray(hue, dtype=np.float64) % 1.0) * 6.0
    # fully saturated, full value: each channel is a clipped triangle wave of the hue
    r = np.clip(np.abs(h6 - 3.0) - 1.0, 0.0, 1.0)
    g = np.clip(2.0 - np.abs(h6 - 2.0), 0.0, 1.0)
    b = np.clip(2.0 - np.abs(h6 - 4.0), 0.0, 1.0)
    return np.stack([r, g, b], axis=-1)
