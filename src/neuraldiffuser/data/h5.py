"""Lazy HDF5 access with checks that name the file and key."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError


def open_h5(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", where=str(path), fix="check the dataset folder and its layout (docs/dataset-layout.md)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"not a readable HDF5 file ({exc})", where=str(path), fix="re-download or re-create it") from None


def require_dataset(f: h5py.File, key: str, ndim: int | None = None, dtypes: tuple[str, ...] | None = None) -> h5py.Dataset:
    where = f"{f.filename}:{key}"
    if key not in f:
        raise DataError(f"key '{key}' not found (keys: {', '.join(sorted(f.keys())) or 'none'})", where=str(f.filename))
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError("expected a dataset, found a group", where=where)
    if ndim is not None and ds.ndim != ndim:
        raise DataError(f"expected a {ndim}-D array, got shape {ds.shape}", where=where)
    if dtypes is not None and ds.dtype.name not in dtypes:
        raise DataError(f"expected dtype {' or '.join(dtypes)}, got {ds.dtype.name}", where=where)
    return ds


def read_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """Read arbitrary rows (any order, repeats allowed) with one sorted, de-duplicated HDF5 read."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1:
        raise ValueError(f"rows must be 1-D, got shape {rows.shape}")
    if rows.size == 0:
        return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
    if rows.min() < 0 or rows.max() >= ds.shape[0]:
        raise DataError(
            f"row index out of range [0, {ds.shape[0]}): min {rows.min()}, max {rows.max()}",
            where=f"{ds.file.filename}:{ds.name.lstrip('/')}",
        )
    uniq, inverse = np.unique(rows, return_inverse=True)
    if uniq.size > 1 and (uniq[-1] - uniq[0] + 1) <= 2 * uniq.size:
        block = ds[int(uniq[0]) : int(uniq[-1]) + 1]  # dense enough: one contiguous read is faster
        data = block[uniq - uniq[0]]
    else:
        data = ds[uniq]
    return data[inverse]


class LazyArray:
    """A row-indexable view of one HDF5 dataset that reopens itself after pickling (DataLoader workers)."""

    def __init__(self, path: str | Path, key: str, ndim: int | None = None, dtypes: tuple[str, ...] | None = None):
        self.path, self.key, self._ndim, self._dtypes = str(path), key, ndim, dtypes
        self._file: h5py.File | None = None
        ds = self._ds()
        self.shape: tuple[int, ...] = tuple(ds.shape)
        self.dtype = ds.dtype

    def _ds(self) -> h5py.Dataset:
        if self._file is None:
            self._file = open_h5(self.path)
        return require_dataset(self._file, self.key, self._ndim, self._dtypes)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, rows: np.ndarray) -> np.ndarray:
        return read_rows(self._ds(), rows)

    def chunks(self, size: int = 1024):
        """Yield (start, block) over all rows, ``size`` at a time."""
        ds = self._ds()
        for start in range(0, self.shape[0], size):
            yield start, ds[start : start + size]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __repr__(self) -> str:
        return f"LazyArray({self.path}:{self.key}, shape={self.shape}, dtype={self.dtype})"
