"""Scene parameters and ray-primitive geometry of the Shapes3D look-alike (private helper of
:mod:`disentkit.data._shapes3d_render`, which shades what these functions hit).

Conventions as in the renderer: scene frame x right, y up, z away from the camera at azimuth 0;
floor y = 0; the object stands on the floor at the origin, axis-aligned.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: surfaces whose albedo is a factor, in the order of the weight planes
SURFACES = ("floor", "wall", "object")
SHAPES = ("cube", "cylinder", "sphere", "capsule")

_EPS = 1e-4


@dataclasses.dataclass(frozen=True)
class SceneParams:
    """Camera, room, object sizes and lights of the look-alike, fitted to ``3dshapes.gif``.

    Fitted with Nelder-Mead against GIF frames whose factors were read off
    (``tests/shapes3d_reference.py: GIF_FACTORS``): first the camera, room and object sizes to the frames'
    regions (sky, back wall, darker side wall, floor, object) and to the wall's top-edge and
    floor-line profiles, then the lights to the pixel error. Lengths are in arbitrary units.
    ``light`` is the shadow-casting point light's position in the camera-fixed frame (it orbits
    with the camera, as the originals' shadows show); ``headlight`` is MuJoCo's shadowless
    directional light along the viewing axis.
    """

    camera_distance: float = 13.273
    camera_height: float = 3.695
    camera_pitch_deg: float = 0.405  # looking down
    fov_deg: float = 44.357  # vertical = horizontal field of view
    back_wall: float = 18.771  # distance of the back wall from the object
    side_wall: float = 17.737  # half width of the room
    front_wall: float = 30.0  # behind the camera, only closes the room
    wall_height: float = 9.502
    cube_half: float = 1.665
    cylinder_radius: float = 1.743
    cylinder_height: float = 3.778
    sphere_radius: float = 2.042
    capsule_radius: float = 1.449
    capsule_length: float = 3.433  # straight part between the two half spheres
    light: tuple[float, float, float] = (-3.681, 28.187, 3.609)
    light_spot_exponent: float = 2.820
    light_target: tuple[float, float, float] = (-4.671, 0.000, -1.893)  # spot aim, front left
    # per surface (floor, wall, object): MuJoCo materials differ per geom
    ambient: tuple[float, float, float] = (0.430, 0.462, 0.391)
    headlight: tuple[float, float, float] = (0.295, 0.557, 0.563)
    diffuse: tuple[float, float, float] = (0.601, 0.063, 0.481)
    specular: float = 0.350
    shininess: float = 3.245
    sky: tuple[float, float, float] = (153 / 255, 226 / 255, 249 / 255)
    #: -1: orientation class 0 (azimuth -30 deg) shows the room corner right of the object
    azimuth_sign: float = -1.0


# ------------------------------------------------------------------------------------ geometry
def _rot_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def camera_rays(p: SceneParams, azimuth_deg: float, size: int, supersample: int):
    """Origin [3] and unit directions [size*size*ss*ss, 3] in the scene frame.

    Samples lie on a regular ``ss x ss`` grid inside each pixel, in row-major order over the
    ``size*ss`` square, so averaging each pixel's block gives an anti-aliased pixel
    (:func:`_pixel_mean`). Also returns the azimuth's rotation, which turns the camera-fixed frame
    (camera and light) into the scene frame.
    """
    ss = supersample
    n = size * ss
    offs = (np.arange(n) + 0.5) / n * 2.0 - 1.0  # sample centres in [-1, 1]
    t = math.tan(math.radians(p.fov_deg) / 2.0)
    v, u = np.meshgrid(-offs * t, offs * t, indexing="ij")  # v up, u right
    pitch = math.radians(p.camera_pitch_deg)
    fwd = np.array([0.0, -math.sin(pitch), math.cos(pitch)])
    up = np.array([0.0, math.cos(pitch), math.sin(pitch)])
    right = np.array([1.0, 0.0, 0.0])
    d = fwd + u[..., None] * right + v[..., None] * up
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    rot = _rot_y(p.azimuth_sign * azimuth_deg)
    origin = rot @ np.array([0.0, p.camera_height, -p.camera_distance])
    return origin, d.reshape(-1, 3) @ rot.T, rot


def _pixel_mean(x: np.ndarray, size: int, ss: int) -> np.ndarray:
    """Average the ss x ss samples of each pixel: [..., (size*ss)**2] -> [..., size*size]."""
    lead = x.shape[:-1]
    x = x.reshape(*lead, size, ss, size, ss).mean(axis=(-3, -1))
    return x.reshape(*lead, size * size)


def _sphere(o, d, centre, r):
    oc = o - centre
    b = np.einsum("ij,ij->i", oc, d) if oc.ndim == 2 else d @ oc
    c = (oc * oc).sum(-1) - r * r
    disc = b * b - c
    ok = disc >= 0
    t = -b - np.sqrt(np.where(ok, disc, 0.0))
    t = np.where(ok & (t > _EPS), t, np.inf)
    return t


def _vertical_cylinder(o, d, r, y0, y1):
    """Side of the cylinder x^2+z^2=r^2 between heights y0 and y1 (nearest entering hit)."""
    ox, oy, oz = (o[..., i] for i in range(3))
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - r * r
    disc = b * b - a * c
    ok = (disc >= 0) & (a > 1e-12)
    t = (-b - np.sqrt(np.where(ok, disc, 0.0))) / np.where(a > 1e-12, a, 1.0)
    y = oy + t * dy
    return np.where(ok & (t > _EPS) & (y >= y0) & (y <= y1), t, np.inf)


def _disc(o, d, r, y):
    """Horizontal disc of radius r at height y, seen from above."""
    oy = o[..., 1]
    dy = d[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - oy) / dy
    x = o[..., 0] + t * d[:, 0]
    z = o[..., 2] + t * d[:, 2]
    return np.where((dy < 0) & (t > _EPS) & (x * x + z * z <= r * r), t, np.inf)


def _box(o, d, half, height):
    lo = np.array([-half, 0.0, -half])
    hi = np.array([half, height, half])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
    t1 = np.nan_to_num(t1, nan=-np.inf)
    t2 = np.nan_to_num(t2, nan=np.inf)
    tmin_axes = np.minimum(t1, t2)
    tmin = tmin_axes.max(-1)
    tmax = np.maximum(t1, t2).min(-1)
    t = np.where((tmax >= tmin) & (tmin > _EPS), tmin, np.inf)
    axis = tmin_axes.argmax(-1)
    return t, axis


def intersect_object(p: SceneParams, shape: int, scale: float, o, d):
    """Nearest hit of rays (o, d) with the object: distance t [N] (inf: miss), normals [N, 3]."""
    n_rays = d.shape[0]
    hit_pt = lambda t: o + np.where(np.isfinite(t), t, 0.0)[:, None] * d  # noqa: E731
    if shape == 0:  # cube
        h = p.cube_half * scale
        t, axis = _box(o, d, h, 2 * h)
        normal = np.zeros((n_rays, 3))
        sign = -np.sign(d[np.arange(n_rays), axis])
        normal[np.arange(n_rays), axis] = sign
        return t, normal
    if shape == 2:  # sphere
        r = p.sphere_radius * scale
        centre = np.array([0.0, r, 0.0])
        t = _sphere(o, d, centre, r)
        normal = (hit_pt(t) - centre) / r
        return t, normal
    if shape == 1:  # cylinder
        r, h = p.cylinder_radius * scale, p.cylinder_height * scale
        t_side = _vertical_cylinder(o, d, r, 0.0, h)
        t_top = _disc(o, d, r, h)
        t = np.minimum(t_side, t_top)
        x = hit_pt(t)
        side_n = np.stack([x[:, 0] / r, np.zeros(n_rays), x[:, 2] / r], -1)
        normal = np.where((t_top < t_side)[:, None], np.array([0.0, 1.0, 0.0]), side_n)
        return t, normal
    if shape == 3:  # capsule
        r, length = p.capsule_radius * scale, p.capsule_length * scale
        y0, y1 = r, r + length
        t_side = _vertical_cylinder(o, d, r, y0, y1)
        t_lo = _sphere(o, d, np.array([0.0, y0, 0.0]), r)
        t_hi = _sphere(o, d, np.array([0.0, y1, 0.0]), r)
        t = np.minimum(t_side, np.minimum(t_lo, t_hi))
        x = hit_pt(t)
        axis_y = np.clip(x[:, 1], y0, y1)
        normal = (x - np.stack([np.zeros(n_rays), axis_y, np.zeros(n_rays)], -1)) / r
        return t, normal
    raise ValueError(f"shape class must be in [0, {len(SHAPES)}), found {shape}")


def _room(p: SceneParams, o, d):
    """Floor, wall or sky for rays leaving from inside the room: (t, surface id, normal).

    Surface ids: 0 floor, 1 wall, 2 sky (t = inf).
    """
    n = d.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(d[:, 0] > 0, (p.side_wall - o[0]) / d[:, 0], (-p.side_wall - o[0]) / d[:, 0])
        tz = np.where(d[:, 2] > 0, (p.back_wall - o[2]) / d[:, 2], (-p.front_wall - o[2]) / d[:, 2])
        tf = np.where(d[:, 1] < 0, -o[1] / d[:, 1], np.inf)
    tx = np.nan_to_num(tx, nan=np.inf, posinf=np.inf)
    tz = np.nan_to_num(tz, nan=np.inf, posinf=np.inf)
    t_wall = np.minimum(tx, tz)
    wall_y = o[1] + t_wall * d[:, 1]
    surface = np.where(tf < t_wall, 0, np.where(wall_y <= p.wall_height, 1, 2))
    t = np.where(surface == 0, tf, np.where(surface == 1, t_wall, np.inf))
    normal = np.zeros((n, 3))
    normal[surface == 0] = (0.0, 1.0, 0.0)
    xwall = (surface == 1) & (tx < tz)
    zwall = (surface == 1) & ~(tx < tz)
    normal[xwall, 0] = -np.sign(d[xwall, 0])
    normal[zwall, 2] = -np.sign(d[zwall, 2])
    return t, surface, normal
