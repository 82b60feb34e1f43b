"""Where the stimuli come from when scoring image folders: strips, an image folder, an HDF5 or
.npy array, a dataset.

Each source serves ``get(indices)`` (uint8 (n, H, W, 3) or float (n, 3, H, W) in [0, 1], any size) and
has a ``root`` (what feature caches are keyed on). Arrays are indexed by the image index: row i is
image i (``00012.png`` is compared with row 12).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .imagefolders import ImageFolder, read_image, scan_folder

STRIPS = "strips"


@dataclass
class FolderTruth:
    """Stimuli as image files named ``<index>.png`` (any size, one size per folder)."""

    folder: ImageFolder

    @property
    def root(self) -> Path:
        return self.folder.path

    def indices(self) -> np.ndarray:
        return self.folder.images

    def get(self, images) -> np.ndarray:
        return np.stack([read_image(self.folder.files[int(i)][0]) for i in images])


@dataclass
class StripTruth:
    """The stimulus tile of each strip of a reconstruction folder."""

    folder: ImageFolder

    @property
    def root(self) -> Path:
        return self.folder.path

    def indices(self) -> np.ndarray:
        return self.folder.images

    def get(self, images) -> np.ndarray:
        return self.folder.load_truth(images)


class ArrayTruth:
    """Rows of an (N, H, W, 3) or (N, 3, H, W) array in an HDF5 or .npy file: uint8, or floats in [0, 1]."""

    def __init__(self, path: Path, key: str | None = None):
        self.root, self.key = path, key
        if path.suffix == ".npy":
            try:
                self.array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read array ({exc})", where=str(path)) from None
        else:
            self.array = self._h5(path, key)
        shape = tuple(self.array.shape)
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise DataError(
                f"expected images (N, H, W, 3) or (N, 3, H, W), got shape {shape}", where=self.where
            )
        self.channels_last = shape[3] == 3 and shape[1] != 3
        self.n = shape[0]

    @property
    def where(self) -> str:
        return f"{self.root}:{self.key}" if self.key else str(self.root)

    def _h5(self, path: Path, key: str | None):
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"cannot open HDF5 file ({exc})", where=str(path)) from None
        if key is None:
            cands = []
            f.visititems(
                lambda name, obj: (
                    cands.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 4 else None
                )
            )
            if len(cands) != 1:
                raise DataError(
                    f"{len(cands)} four-dimensional datasets ({', '.join(cands[:5]) or 'none'})",
                    where=str(path),
                    fix="name one with --truth-key",
                )
            key = cands[0]
        if key not in f:
            raise DataError(f"no dataset '{key}'", where=str(path), fix=f"choose from: {', '.join(f.keys())}")
        self.key = key
        return f[key]

    def indices(self) -> np.ndarray:
        return np.arange(self.n, dtype=np.int64)

    def get(self, images):
        idx = np.asarray(images, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise DataError(
                f"image index {int(idx.max())} is beyond the array's {self.n} rows",
                where=self.where,
                fix="file names are row indices into the truth array",
            )
        uniq, inverse = np.unique(idx, return_inverse=True)  # h5py reads increasing indices only
        rows = np.asarray(self.array[uniq])[inverse]
        if self.channels_last:
            rows = np.moveaxis(rows, -1, 1)
        if rows.dtype == np.uint8:
            return torch.from_numpy(np.ascontiguousarray(rows)).float().div_(255.0)
        x = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        if float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3:
            raise DataError(
                f"float images must lie in [0, 1], found [{float(x.min()):.3g}, {float(x.max()):.3g}]",
                where=self.where,
            )
        return x.clamp_(0, 1)


class DatasetTruth:
    """The image store of one of our datasets (``neuraldiffuser simulate`` or the MindEye2 layout)."""

    def __init__(self, path: Path, layout: str = "auto"):
        from ..data import open_dataset

        self.dataset = open_dataset(path, layout=layout)
        self.root = self.dataset.root

    def indices(self) -> np.ndarray:
        return np.arange(len(self.dataset.images), dtype=np.int64)

    def get(self, images) -> np.ndarray:
        return self.dataset.images.get(np.asarray(images, dtype=np.int64))


def _is_dataset(path: Path) -> bool:
    from ..data.dataset import detect_layout

    try:
        detect_layout(path)
        return True
    except DataError:
        return False


def open_truth(spec: str | Path | None, key: str | None = None, layout: str = "auto"):
    """A truth source from ``--truth``: 'strips' (or None) → per folder; a dataset, image folder,
    .h5/.hdf5 or .npy."""
    if spec is None or str(spec) == STRIPS:
        return STRIPS
    path = Path(spec)
    if not path.exists():
        raise DataError(
            "truth not found",
            where=str(path),
            fix="give an image folder, an .hdf5/.npy array, a dataset folder, or 'strips'",
        )
    if path.is_dir():
        return DatasetTruth(path, layout) if _is_dataset(path) else FolderTruth(scan_folder(path))
    if path.suffix.lower() in (".h5", ".hdf5", ".npy"):
        return ArrayTruth(path, key)
    raise DataError(
        f"unknown truth format '{path.suffix}'",
        where=str(path),
        fix="use an image folder, .hdf5/.h5, .npy, a dataset folder or 'strips'",
    )


def check_covers(truth, folder: ImageFolder) -> None:
    """Every scored image must exist in the truth: a one-line error naming the first missing ones."""
    have = set(int(i) for i in truth.indices())
    missing = [int(i) for i in folder.images if int(i) not in have]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(folder.images)} reconstructed images have no truth, e.g. {missing[:5]}",
            where=str(folder.path),
            fix=f"the truth ({truth.root}) must hold every index the file names give",
        )
