"""Washington RGB-D Objects (Lai et al. 2011), as a real target with an incomplete factor grid.

Dapueto et al. 2024 (§4.1) transfer to RGB-D Objects in colour (``rgbd-objects``) and depth
(``rgbd-objects-depth``). Each object instance was filmed on a turntable by three videos at
different camera heights; factors as in the paper: *category* (51, alphabetical), *azimuth* (the
video number 1, 2, 4 → 3 classes; physically the camera's elevation) and *pose* (the frame number
within the video, frame 1 → class 0). The first instance of each category is used by default
(``instances=`` takes more, adding an *instance* factor).

Videos hold different numbers of frames and some frames are missing, so the grid is incomplete:
the pose factor's size is the largest frame number found, and the dataset keeps the table of
(category, azimuth, pose) combinations present, samples uniformly from it, and pairs only to
partners that exist (:mod:`disentkit.data.pairs`).

Files (the "cropped" release, ``rgbd-dataset``)::

    ROOT/<category>/<category>_<instance>/<category>_<instance>_<video>_<frame>_crop.png
                                        ..._<video>_<frame>_maskcrop.png
                                        ..._<video>_<frame>_depthcrop.png   (16-bit, millimetres)

Image recipe. RGB: the crop times its binary mask, centred on a black square (the shorter side
padded — the authors' code swaps the axes), area-resized to 64x64. Depth: one of two
representations, ``depth_mode=``, then padded and resized alike:

* ``"reference"`` (default) — the paper's loader, bit for bit: ``cv2.imread(...,
  IMREAD_GRAYSCALE)`` reads the 16-bit PNG as 8 bits by keeping the *high byte* (libpng's
  ``strip_16``: 256 mm steps), multiplies by 255/4 and casts to uint8, which wraps modulo 256
  on x86: 1.00 m → 191, 1.02 m → 255, 1.28 m → 62. A coarse, non-monotone code of distance, not
  of the object's shape; missing readings (0) stay 0, the background is not masked.
* ``"normalised"`` — the valid (non-zero) millimetres of each crop mapped linearly to [0, 1],
  the nearest point at 1 and the farthest at 0, per crop, missing readings 0: the object's
  relief over the full 8-bit range, no wrap-around.

Why "reference" is the default: a transfer to ``rgbd-objects-depth`` is only comparable with the
paper's numbers when the target images are the paper's; "normalised" is the better-conditioned
input (monotone, the whole range spent on the object) for studies of depth transfer on their own
terms. Choose it with the dataset option ``depth_mode`` (``get_dataset(..., depth_mode=...)``,
a training config's ``data.options``); the two modes keep separate caches.
The resize (area, antialiased) is ours in both modes; the paper's loader uses OpenCV's bilinear
``A.Resize`` without antialiasing after the same padding.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from disentkit.data import cache as cache_mod
from disentkit.data._augment import (
    check_channels,
    convert_channels,
    pad_to_square,
    read_image,
    resize_to,
    to_uint8,
)
from disentkit.data.base import FactorDataset
from disentkit.errors import DataLayoutError

OUT = 64
VIDEOS = (1, 2, 4)
LAYOUT = """ROOT/<category>/<category>_<instance>/  (the Washington "rgbd-dataset" cropped release)
    <category>_<instance>_<video>_<frame>_crop.png       RGB crop
    <category>_<instance>_<video>_<frame>_maskcrop.png   binary mask, same size
    <category>_<instance>_<video>_<frame>_depthcrop.png  16-bit depth in mm, same size
  categories: one folder each (51 in the release); videos 1, 2, 4; frames numbered from 1"""


def _instance_dirs(category_dir: Path) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"^{re.escape(category_dir.name)}_(\d+)$")
    found = []
    for entry in os.scandir(category_dir):
        m = pattern.match(entry.name)
        if m and entry.is_dir():
            found.append((int(m[1]), Path(entry.path)))
    return sorted(found)


def scan_frames(instance_dir: Path, kinds: tuple[str, ...]) -> dict[tuple[int, int], dict]:
    """{(video, frame): {kind: path}} for frames that have every file in ``kinds``.

    Frames with only some of the files (e.g. a crop without its mask) are skipped with a warning.
    """
    prefix = re.escape(instance_dir.name)
    pattern = re.compile(rf"^{prefix}_(\d+)_(\d+)_(crop|maskcrop|depthcrop)\.png$")
    frames: dict[tuple[int, int], dict] = {}
    for entry in os.scandir(instance_dir):
        m = pattern.match(entry.name)
        if m:
            frames.setdefault((int(m[1]), int(m[2])), {})[m[3]] = Path(entry.path)
    complete = {k: v for k, v in frames.items() if all(kind in v for kind in kinds)}
    partial = sorted(set(frames) - set(complete))
    partial = [k for k in partial if any(kind in frames[k] for kind in kinds)]
    if partial:
        v, f = partial[0]
        warnings.warn(
            f"{instance_dir}: skipped {len(partial)} frame(s) lacking one of {kinds}, "
            f"e.g. video {v} frame {f}", stacklevel=3,
        )
    for video, frame in complete:
        if video not in VIDEOS or frame < 1:
            path = next(iter(complete[(video, frame)].values()))
            raise DataLayoutError(path, f"video {video} frame {frame}: expected videos "
                                  f"{VIDEOS} and frames numbered from 1", LAYOUT)
    return complete


class RGBDObjects(FactorDataset):
    """RGB-D Objects, colour: category 51 x azimuth 3 x pose (frames), masked crops at 64x64."""

    thread_safe_images = True  # images() reads arrays loaded at construction

    name = "rgbd-objects"
    factor_names = ("category", "azimuth", "pose")
    #: nominal sizes; an instance computes them from the folder (pose = largest frame number)
    factor_sizes = (51, 3, 263)
    #: what each factor is and what else varies (disentkit.data.kinds): azimuth is the camera's
    #: elevation video, pose the turntable's turn; the crops keep the table behind the object
    factor_kinds = {"category": "identity", "instance": "identity", "azimuth": "pose",
                    "pose": "pose"}
    nuisances: tuple[str, ...] = ("texture", "lighting", "background")
    image_shape = (3, 64, 64)
    synthetic = False
    source = "Lai et al. 2011, Washington RGB-D Objects, cropped release (read from --root)"

    kinds: tuple[str, ...] = ("crop", "maskcrop")
    source_channels = 3

    def __init__(
        self,
        root: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        instances: int = 1,
        channels: int | None = None,
    ):
        self.root = Path(root)
        self.channels = check_channels(self.source_channels if channels is None else channels)
        self.image_shape = (self.channels, OUT, OUT)
        if int(instances) < 1:
            raise ValueError(f"instances must be >= 1, found {instances}")
        self.instances = int(instances)
        table, files = self._scan()
        self.combinations = table
        recipe = {"what": f"{self.name} 64", "version": 1, "instances": self.instances,
                  **self._recipe_extra()}
        flat = [p for f in files for p in f.values()]
        key = cache_mod.fingerprint_key(recipe, cache_mod.file_fingerprint(flat, self.root))

        def build(out):
            cache_mod.fill_from_files(out, files, self._decode, f"decoding {self.name}")

        self._pixels = cache_mod.cached_array(
            cache_mod.cache_name(self.name + self._cache_tag(), self.root), key,
            (len(files), OUT, OUT, self.source_channels), build, cache_dir,
        )

    def _recipe_extra(self) -> dict:
        return {}

    def _cache_tag(self) -> str:
        return ""

    def _scan(self) -> tuple[np.ndarray, list[dict]]:
        """The combinations present (sorted) and their files; sets factor names and sizes."""
        if not self.root.is_dir():
            raise DataLayoutError(self.root, "RGB-D Objects folder not found", LAYOUT)
        categories = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not categories:
            raise DataLayoutError(self.root, "no category folders", LAYOUT)
        rows, files = [], []
        for c, category in enumerate(categories):
            inst = _instance_dirs(self.root / category)
            if len(inst) < self.instances:
                raise DataLayoutError(
                    self.root / category, f"found {len(inst)} instance folder(s) "
                    f"'{category}_<n>', expected at least {self.instances}", LAYOUT,
                )
            for i, (_, inst_dir) in enumerate(inst[: self.instances]):
                frames = scan_frames(inst_dir, self.kinds)
                if not frames:
                    raise DataLayoutError(inst_dir, f"no complete frame ({' + '.join(self.kinds)})",
                                          LAYOUT)
                for (video, frame), paths in frames.items():
                    rows.append((c, i, VIDEOS.index(video), frame - 1))
                    files.append(paths)
        table = np.array(rows, dtype=np.int64)
        n_poses = int(table[:, 3].max()) + 1  # the longest video's last frame
        if self.instances == 1:
            table = table[:, [0, 2, 3]]
            self.factor_names = ("category", "azimuth", "pose")
            self.factor_sizes = (len(categories), len(VIDEOS), n_poses)
        else:
            self.factor_names = ("category", "instance", "azimuth", "pose")
            self.factor_sizes = (len(categories), self.instances, len(VIDEOS), n_poses)
        self.categories = tuple(categories)
        order = np.argsort(table @ self.radix, kind="stable")
        return table[order], [files[k] for k in order]

    def _decode(self, paths: dict) -> np.ndarray:
        rgb = read_image(paths["crop"])
        mask = read_image(paths["maskcrop"])
        if rgb.ndim != 3 or rgb.dtype != np.uint8:
            raise DataLayoutError(paths["crop"], f"expected an 8-bit RGB crop, found "
                                  f"{rgb.dtype} {rgb.shape}", LAYOUT)
        if mask.shape[:2] != rgb.shape[:2]:
            raise DataLayoutError(paths["maskcrop"], f"mask is {mask.shape[:2]}, expected the "
                                  f"crop's size {rgb.shape[:2]}", LAYOUT)
        keep = (mask.reshape(mask.shape[0], mask.shape[1], -1) > 0).any(axis=2, keepdims=True)
        img = pad_to_square(rgb * keep)
        return to_uint8(resize_to(img.astype(np.float64), OUT))

    def images(self, factors, rng=None) -> np.ndarray:
        img = self._pixels[self.factors_to_index(factors)]
        out = img.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
        return convert_channels(out, self.channels)

    def factor_values(self) -> dict[str, np.ndarray]:
        values = {"category": np.array(self.categories)}
        if self.instances > 1:
            values["instance"] = np.arange(self.instances)
        values["azimuth"] = np.array(VIDEOS)  # video number: the camera's elevation
        values["pose"] = np.arange(1, self.factor_sizes[-1] + 1)  # frame number
        return values


def scale_depth(depth: np.ndarray) -> np.ndarray:
    """``"normalised"``: uint16 mm → float in [0, 1], nearest valid point 1, farthest 0,
    missing 0."""
    d = depth.astype(np.float64)
    valid = d > 0
    if not valid.any():
        return np.zeros_like(d)
    near, far = d[valid].min(), d[valid].max()
    if far == near:
        return valid.astype(np.float64)
    return np.where(valid, (far - d) / (far - near), 0.0)


def reference_depth(depth: np.ndarray) -> np.ndarray:
    """``"reference"``: uint16 mm → uint8 as the paper's loader computes it.

    OpenCV reads a 16-bit PNG with ``IMREAD_GRAYSCALE`` through libpng's ``png_set_strip_16``
    (the high byte, ``d >> 8``); the loader then computes ``(img * (255 / 4)).astype(np.uint8)``,
    whose out-of-range values wrap modulo 256 after truncation on x86 (where the paper ran).
    """
    high = (np.asarray(depth, dtype=np.uint16) >> 8).astype(np.float64)
    return (np.trunc(high * (255.0 / 4.0)).astype(np.int64) % 256).astype(np.uint8)


DEPTH_MODES = ("reference", "normalised")


class RGBDObjectsDepth(RGBDObjects):
    """RGB-D Objects, depth: the 16-bit depth crops as ``depth_mode`` says (see module doc).

    One channel by default; ``channels=3`` replicates it (for networks trained on colour).
    """

    name = "rgbd-objects-depth"
    nuisances = ("background",)  # depth shows neither texture nor lighting
    image_shape = (1, 64, 64)
    kinds = ("depthcrop",)
    source_channels = 1

    def __init__(
        self,
        root: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        instances: int = 1,
        channels: int | None = None,
        depth_mode: str = "reference",
    ):
        if depth_mode not in DEPTH_MODES:
            raise ValueError(f"depth_mode must be one of {DEPTH_MODES}, found {depth_mode!r}")
        self.depth_mode = depth_mode
        super().__init__(root, cache_dir=cache_dir, instances=instances, channels=channels)

    def _recipe_extra(self) -> dict:
        return {"depth_mode": self.depth_mode}

    def _cache_tag(self) -> str:
        return f"-{self.depth_mode}"

    def _decode(self, paths: dict) -> np.ndarray:
        depth = read_image(paths["depthcrop"])
        if depth.dtype != np.uint16 or depth.ndim != 2:
            raise DataLayoutError(paths["depthcrop"], f"expected a 16-bit single-channel depth "
                                  f"PNG, found {depth.dtype} {depth.shape}", LAYOUT)
        if self.depth_mode == "reference":
            img = reference_depth(depth).astype(np.float64)
        else:
            img = scale_depth(depth) * 255.0
        return to_uint8(resize_to(pad_to_square(img[..., None]), OUT))
