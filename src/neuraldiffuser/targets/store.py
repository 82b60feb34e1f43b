"""The target store: one HDF5 file holding z, c and/or g for a list of images (see docs/architecture.md).

``targets.hdf5`` (all stimulus images, written by ``extract``) and ``decoded.hdf5`` (test images,
written by ``decode`` and the baselines) share this format, so the sampler reads either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..data.h5 import open_h5, read_rows, require_dataset
from ..errors import DataError

TARGET_KEYS = ("z", "c", "g", "z_mode")  # z_mode: the posterior mode beside a sampled z (train.z_target)


class TargetStore:
    """Read-only, lazy access to a target store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open_h5(self.path)
        self.image = require_dataset(self._f, "image", ndim=1)[()].astype(np.int64)
        self.keys = [k for k in TARGET_KEYS if k in self._f]
        if not self.keys:
            raise DataError(f"holds none of {', '.join(TARGET_KEYS)}", where=str(self.path))
        for k in self.keys:
            if self._f[k].shape[0] != len(self.image):
                raise DataError(f"'{k}' has {self._f[k].shape[0]} rows but 'image' has {len(self.image)}", where=f"{self.path}:{k}")
        self.attrs: dict[str, Any] = {k: _decode_attr(v) for k, v in self._f.attrs.items()}
        self._row = {int(im): i for i, im in enumerate(self.image)}

    def __len__(self) -> int:
        return len(self.image)

    def __repr__(self) -> str:
        return f"TargetStore({self.path}, n={len(self)}, {', '.join(f'{k}{self.shape(k)}' for k in self.keys)})"

    def shape(self, key: str) -> tuple[int, ...]:
        """Per-image shape of one target."""
        return tuple(self._ds(key).shape[1:])

    def _ds(self, key: str) -> h5py.Dataset:
        if key not in self.keys:
            raise DataError(f"no '{key}' targets (has {', '.join(self.keys)})", where=str(self.path))
        return self._f[key]

    @property
    def done(self) -> np.ndarray:
        return self._f["done"][()] if "done" in self._f else np.ones(len(self), dtype=bool)

    def rows_of(self, images) -> np.ndarray:
        """Rows holding these image indices (error naming the first missing one)."""
        out = np.empty(len(images), dtype=np.int64)
        for i, im in enumerate(np.asarray(images).tolist()):
            if im not in self._row:
                raise DataError(f"image {im} is not in the store", where=str(self.path), fix="extract targets for every image the run uses")
            out[i] = self._row[im]
        return out

    def get(self, key: str, rows) -> np.ndarray:
        """float32 rows of one target."""
        return read_rows(self._ds(key), np.asarray(rows)).astype(np.float32, copy=False)

    def get_images(self, key: str, images) -> np.ndarray:
        return self.get(key, self.rows_of(images))

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _decode_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    if isinstance(v, np.generic):
        return v.item()
    return v


def create_store(
    path: str | Path,
    images: np.ndarray,
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, str] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Create an empty store (``done`` all False) with chunking of one image per chunk for g, 64 for c and z."""
    dtypes = dict(dtypes or {})
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.asarray(images, dtype=np.int64))
        f.create_dataset("done", data=np.zeros(len(images), dtype=bool))
        for key, shape in shapes.items():
            if key not in TARGET_KEYS:
                raise ValueError(f"unknown target key {key!r}")
            per = int(np.prod(shape)) * np.dtype(dtypes.get(key, "float32")).itemsize
            rows = max(1, min(len(images), (1 << 20) // max(per, 1)))
            f.create_dataset(key, shape=(len(images), *shape), dtype=dtypes.get(key, "float32"), chunks=(rows, *shape))
        for k, v in (attrs or {}).items():
            f.attrs[k] = json.dumps(v) if isinstance(v, (list, dict)) else v


def write_rows(path: str | Path, rows: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
    """Write some rows of some targets and mark them done (flushes before returning)."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows)
    with h5py.File(path, "a") as f:
        for key, val in values.items():
            f[key][rows[order]] = np.asarray(val)[order].astype(f[key].dtype)
        done = f["done"][()]
        done[rows] = True
        f["done"][...] = done


def write_store(path: str | Path, images: np.ndarray, values: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> Path:
    """Write a complete store in one go (decoded targets, tests), atomically."""
    from ..utils.io import atomic_path

    with atomic_path(path, suffix=".hdf5") as tmp:
        create_store(tmp, images, {k: v.shape[1:] for k, v in values.items()}, {k: str(v.dtype) for k, v in values.items()}, attrs)
        write_rows(tmp, np.arange(len(images)), values)
    return Path(path)
