"""Shapes3D (Burgess & Kim 2018), generated with no download, and a reader of ``3dshapes.h5``.

Dapueto et al. 2024 (Sec. 4, Tab. 1) use Shapes3D both as a source of disentangled
representations and as a target (White-dSprites -> Shapes3D, Color-dSprites -> Shapes3D,
Shapes3D -> Coil-100 / RGB-D). Its six factors are three hues (floor, wall, object), the object's
scale and shape, and the camera's azimuth around the object; index order and label values are
those of the public file (orientation fastest).

The generated images come from a numpy ray caster that looks like the public MuJoCo renders
(``_shapes3d_render``): it renders each of the 480 geometries (scale x shape x orientation) once,
lazily, into per-pixel weights of the three coloured surfaces, and composes a batch as
``clip(albedo.T @ weights + constant)`` (albedo = HSV(hue, 1, 1)), so the hue factors cost one tiny
matrix product per image. ``Shapes3D(root=DIR)`` instead reads ``DIR/3dshapes.h5``, the original
release, row by row on demand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from disentkit.data import _shapes3d_render as render
from disentkit.data.base import FactorDataset
from disentkit.errors import DataLayoutError, reading
from disentkit.io import atomic_path

FILE_NAME = "3dshapes.h5"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SIZE = 64
EXPECTED_LAYOUT = (
    f"{FILE_NAME}: HDF5 file with datasets\n"
    "  images  uint8 [N, 64, 64, 3]\n"
    "  labels  float [N, 6]: floor_hue, wall_hue, object_hue (0.0 ... 0.9), "
    "scale (linspace(0.75, 1.25, 8)),\n"
    "          shape (0 cube, 1 cylinder, 2 sphere, 3 capsule),\n"
    "          orientation (linspace(-30, 30, 15))\n"
    "  (the original release has N = 480000, rows in factor order, orientation fastest)"
)


def label_values() -> dict[str, np.ndarray]:
    """Label value of every class of every factor, as stored in the public ``labels`` array."""
    hues = np.arange(10) / 10.0
    return {
        "floor_hue": hues,
        "wall_hue": hues.copy(),
        "object_hue": hues.copy(),
        "scale": np.linspace(0.75, 1.25, 8),
        "shape": np.arange(4, dtype=np.float64),
        "orientation": np.linspace(-30.0, 30.0, 15),
    }


def values_to_classes(labels: np.ndarray) -> np.ndarray:
    """Map label values [n, 6] to class indices by rounding to the nearest tabulated value.

    Raises ``ValueError`` when a value is not within a quarter step of a class value (a wrong
    column order or a different dataset would otherwise be silently misread).
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"expected labels of shape [n, 6], found {labels.shape}")
    classes = np.empty(labels.shape, dtype=np.int64)
    for k, (name, values) in enumerate(label_values().items()):
        step = values[1] - values[0]
        cls = np.rint((labels[:, k] - values[0]) / step).astype(np.int64)
        ok = (cls >= 0) & (cls < len(values))
        ok &= np.abs(values[np.clip(cls, 0, len(values) - 1)] - labels[:, k]) <= step / 4
        if not ok.all():
            bad = labels[~ok, k][0]
            raise ValueError(
                f"label column {k} ({name}) holds {bad!r}, "
                f"which is not one of {values.round(4).tolist()}"
            )
        classes[:, k] = cls
    return classes


class Shapes3D(FactorDataset):
    """Shapes3D: 480,000 RGB 64x64 images of one object in a room (Sec. 4 of the paper).

    Without ``root`` the images are generated (look-alike renderer, see the module docstring);
    with ``root`` (a folder holding ``3dshapes.h5``, or the file itself) they are read from the
    file, which may also be a smaller file written by :meth:`export` (then the grid is incomplete
    and :attr:`combinations` lists the rows present). ``supersample`` sets the anti-aliasing
    (samples per pixel side) of the generated images.
    """

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    #: what each factor is and what else varies (disentkit.data.kinds): the orientation is the
    #: object's turn about the vertical axis seen by a fixed camera, a 3-D pose
    factor_kinds = {"floor_hue": "background", "wall_hue": "background", "object_hue": "colour",
                    "scale": "scale", "shape": "identity", "orientation": "pose"}
    nuisances: tuple[str, ...] = ()
    image_shape = (3, SIZE, SIZE)
    synthetic = True
    source = "generated look-alike of DeepMind 3dshapes (root= reads 3dshapes.h5)"

    def __init__(self, root: str | os.PathLike | None = None, supersample: int = 3):
        if int(supersample) < 1:
            raise ValueError(f"supersample must be >= 1, found {supersample}")
        self.supersample = int(supersample)
        self.root = None if root is None else Path(root)
        self.params = render.SceneParams()
        self._weights: np.ndarray | None = None  # [480, 3, H*W] per geometry, filled lazily
        self._const: np.ndarray | None = None
        self._rendered = np.zeros(self.num_geometries, dtype=bool)
        self._views: dict[int, render.View] = {}
        self._albedo = render.hsv_albedo(np.arange(10) / 10.0).astype(np.float32)  # [10, 3]
        self._file = None
        if self.root is not None:
            is_file = self.root.suffix.lower() in (".h5", ".hdf5") and not self.root.is_dir()
            self.path = self.root if is_file else self.root / FILE_NAME
            self._open_file()

    # ------------------------------------------------------------------ factors
    def factor_values(self) -> dict[str, np.ndarray]:
        return label_values()

    @property
    def num_geometries(self) -> int:
        return int(np.prod(FACTOR_SIZES[3:]))

    @staticmethod
    def geometry_index(factors: np.ndarray) -> np.ndarray:
        """Index (scale, shape, orientation) -> 0..479, orientation fastest."""
        return (factors[:, 3] * FACTOR_SIZES[4] + factors[:, 4]) * FACTOR_SIZES[5] + factors[:, 5]

    # ------------------------------------------------------------------ images
    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Images float32 [n, 3, 64, 64] in [0, 1]. ``rng`` is unused: Shapes3D has no nuisances."""
        factors = self.check_factors(factors)
        if self.root is not None:
            return self._read(factors)
        geom = self.geometry_index(factors)
        self._ensure_rendered(geom)
        albedo = self._albedo[factors[:, :3]]  # [n, 3 surfaces, 3 rgb]
        out = np.matmul(albedo.transpose(0, 2, 1), self._weights[geom])
        out += self._const[geom]
        np.clip(out, 0.0, 1.0, out=out)
        return out.reshape(len(factors), *self.image_shape)

    def _ensure_rendered(self, geom: np.ndarray) -> None:
        """Render the geometries not yet cached (each once per dataset object)."""
        if self._weights is None:
            self._weights = np.zeros((self.num_geometries, 3, SIZE * SIZE), dtype=np.float32)
            self._const = np.zeros((self.num_geometries, 3, SIZE * SIZE), dtype=np.float32)
        todo = np.unique(geom[~self._rendered[geom]])
        values = label_values()
        for g in todo:
            scale, rest = divmod(int(g), FACTOR_SIZES[4] * FACTOR_SIZES[5])
            shape, orient = divmod(rest, FACTOR_SIZES[5])
            view = self._views.get(orient)
            if view is None:
                view = render.render_view(
                    self.params, values["orientation"][orient], SIZE, self.supersample
                )
                self._views[orient] = view
            w, c = render.render_weights(
                self.params, shape, values["scale"][scale], values["orientation"][orient],
                SIZE, self.supersample, view=view,
            )
            self._weights[g], self._const[g] = w, c
            self._rendered[g] = True
        if self._rendered.all():
            self._views.clear()  # per-sample room arrays are no longer needed

    # ------------------------------------------------------------------ original file
    def _open_file(self) -> None:
        import h5py

        path = self.path
        if not path.is_file():
            raise DataLayoutError(path, "Shapes3D file not found", EXPECTED_LAYOUT)
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            problem = f"not a readable HDF5 file ({err})"
            raise DataLayoutError(path, problem, EXPECTED_LAYOUT) from err
        try:
            if not all(isinstance(f.get(k), h5py.Dataset) for k in ("images", "labels")):
                raise DataLayoutError(
                    path, f"missing dataset(s); found keys {sorted(f.keys())}", EXPECTED_LAYOUT
                )
            images, labels = f["images"], f["labels"]
            n = images.shape[0] if images.ndim else 0
            if images.shape[1:] != (SIZE, SIZE, 3) or images.dtype != np.uint8 or n == 0:
                problem = f"images has shape {images.shape} and dtype {images.dtype}"
                raise DataLayoutError(path, problem, EXPECTED_LAYOUT)
            if labels.shape != (n, len(FACTOR_NAMES)):
                raise DataLayoutError(
                    path, f"labels has shape {labels.shape}, images have {n} rows", EXPECTED_LAYOUT
                )
            try:
                classes = values_to_classes(labels[()])
            except ValueError as err:
                raise DataLayoutError(path, f"bad label values: {err}", EXPECTED_LAYOUT) from err
        except BaseException:
            f.close()
            raise
        self._file = f
        codes = classes @ self.radix
        if n == len(self) and np.array_equal(codes, np.arange(n)):
            return  # the original release: row = grid code
        if len(np.unique(codes)) != n:
            f.close()
            raise DataLayoutError(path, "labels repeat a factor combination", EXPECTED_LAYOUT)
        self.combinations = classes  # a partial file: its rows are the combinations present

    def _read(self, factors: np.ndarray) -> np.ndarray:
        """Read only the rows asked for; h5py wants sorted unique indices, so sort and scatter."""
        rows = self.factors_to_index(factors)
        uniq, inverse = np.unique(rows, return_inverse=True)
        with reading(self.path, "images", "an intact HDF5 file (corrupt chunk?)"):
            block = self._file["images"][uniq]  # [m, 64, 64, 3] uint8
        out = block[inverse].transpose(0, 3, 1, 2).astype(np.float32)
        out *= 1.0 / 255.0
        return out

    def __getstate__(self):  # an open h5py handle cannot be pickled (DataLoader workers)
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.root is not None:
            import h5py

            self._file = h5py.File(self.path, "r")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # ------------------------------------------------------------------ export
    def export(
        self,
        path: str | os.PathLike,
        sizes: Sequence[int] | None = None,
        batch_size: int = 2000,
    ) -> Path:
        """Write the dataset in the public ``3dshapes.h5`` format, atomically.

        ``images`` uint8 [N, 64, 64, 3] (gzip in chunks of 16 images: about 0.6 kB an image,
        and a random row costs one small chunk) and ``labels`` float64 [N, 6] holding factor *values*, rows in factor order with
        orientation fastest. ``sizes`` keeps only the first ``sizes[k]`` classes of each factor
        (a small file for tests and previews; :class:`Shapes3D` reads it back as an incomplete
        grid); ``None`` writes all 480,000 images.
        """
        import h5py

        from disentkit.progress import track

        if self.root is not None:
            raise ValueError(
                f"export writes the generated images; this Shapes3D reads {self.path} "
                "(build it without root= to export)"
            )
        sizes = tuple(FACTOR_SIZES) if sizes is None else tuple(int(s) for s in sizes)
        if len(sizes) != len(FACTOR_SIZES) or any(
            not 1 <= s <= full for s, full in zip(sizes, FACTOR_SIZES)
        ):
            raise ValueError(
                f"sizes must give 1..n_k classes for each of the factors {FACTOR_SIZES}, "
                f"found {sizes}"
            )
        grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1)
        classes = grid.reshape(-1, len(sizes)).astype(np.int64)
        values = label_values()
        labels = np.stack([values[n][classes[:, k]] for k, n in enumerate(FACTOR_NAMES)], -1)
        path = Path(path)
        with atomic_path(path, suffix=".h5") as tmp:
            with h5py.File(tmp, "w") as f:
                images = f.create_dataset(
                    "images", shape=(len(classes), SIZE, SIZE, 3), dtype=np.uint8,
                    chunks=(min(16, len(classes)), SIZE, SIZE, 3), compression="gzip",
                    compression_opts=4,
                )
                f.create_dataset("labels", data=labels.astype(np.float64))
                starts = range(0, len(classes), batch_size)
                # progress only for real exports (the full file takes minutes)
                mode = "off" if len(starts) < 10 else "auto"
                for start in track(starts, desc=f"export {path.name}", unit="batches", mode=mode):
                    block = self.images(classes[start : start + batch_size])
                    images[start : start + len(block)] = to_uint8_hwc(block)
        return path


def to_uint8_hwc(images: np.ndarray) -> np.ndarray:
    """float [n, 3, H, W] in [0, 1] -> uint8 [n, H, W, 3], rounding to nearest (the file layout)."""
    return np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)
