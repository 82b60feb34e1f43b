"""Lazy HDF5 access with checks that name the file and key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError


def open_h5(path: str | Path, chunk_cache: bool = True) -> h5py.File:
    """Open read-only. ``chunk_cache=False`` for random row access: HDF5's 1 MiB chunk cache then holds a
    whole chunk (up to 16 rows) per row read, and reading only the wanted bytes is 10-100x faster."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "file not found",
            where=str(path),
            fix="check the dataset folder and its layout (docs/dataset-layout.md)",
        )
    try:
        return h5py.File(path, "r", **({} if chunk_cache else {"rdcc_nbytes": 0}))
    except OSError as exc:
        raise DataError(
            f"not a readable HDF5 file ({exc})", where=str(path), fix="re-download or re-create it"
        ) from None


@contextmanager
def h5_writer(path: str | Path, mode: str = "w", name: str | Path | None = None) -> Iterator[h5py.File]:
    """An ``h5py.File`` to write, whose write failures (disk full) raise a ``RunError`` naming the file here.

    h5py flushes a chunk cache when a dataset object is freed and reports a failure there only as
    "Exception ignored", after which the process carries on and may crash. So: no chunk cache (each
    write reaches the OS inside the call that makes it and raises there), and an explicit flush
    before the close. ``name``: the path errors name (the final one when ``path`` is a temporary).
    """
    from ..utils.storage import write_error

    name = name or path
    try:
        f = h5py.File(path, mode, rdcc_nbytes=0)
    except OSError as exc:
        raise write_error(name, exc) from None
    try:
        yield f
        f.flush()
    except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for a failed flush or close
        _close_quietly(f)
        raise write_error(name, exc) from None
    except BaseException:
        _close_quietly(f)
        raise
    try:
        f.close()
    except (OSError, RuntimeError) as exc:
        raise write_error(name, exc) from None


def _close_quietly(f: h5py.File) -> None:
    """Close after a failure without letting a second error (the same full disk) hide the first."""
    try:
        f.close()
    except Exception:  # noqa: BLE001 - the first error is the one reported
        pass


def require_dataset(
    f: h5py.File, key: str, ndim: int | None = None, dtypes: tuple[str, ...] | None = None
) -> h5py.Dataset:
    where = f"{f.filename}:{key}"
    if key not in f:
        raise DataError(
            f"key '{key}' not found (keys: {', '.join(sorted(f.keys())) or 'none'})", where=str(f.filename)
        )
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError("expected a dataset, found a group", where=where)
    if ndim is not None and ds.ndim != ndim:
        raise DataError(f"expected a {ndim}-D array, got shape {ds.shape}", where=where)
    if dtypes is not None and ds.dtype.name not in dtypes:
        raise DataError(f"expected dtype {' or '.join(dtypes)}, got {ds.dtype.name}", where=where)
    return ds


def read_rows(
    ds: h5py.Dataset, rows: np.ndarray, layer: int | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Read arbitrary rows (any order, repeats allowed), optionally only ``[:, layer]`` of each.

    Rows are sorted and de-duplicated, read as runs of consecutive rows (one HDF5 read per run, straight
    into a preallocated array: h5py's point/list selections cost 10-100x more), then put back in order.
    ``out`` (increasing rows only): the array to fill, converted to its dtype.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1:
        raise ValueError(f"rows must be 1-D, got shape {rows.shape}")
    tail = tuple(ds.shape[1:] if layer is None else ds.shape[2:])
    if rows.size == 0:
        return np.empty((0, *tail), dtype=ds.dtype) if out is None else out
    if rows.min() < 0 or rows.max() >= ds.shape[0]:
        raise DataError(
            f"row index out of range [0, {ds.shape[0]}): min {rows.min()}, max {rows.max()}",
            where=f"{ds.file.filename}:{ds.name.lstrip('/')}",
        )
    in_order = bool((np.diff(rows) > 0).all())  # increasing: no reordering needed
    if out is not None:
        if not in_order or out.shape != (rows.size, *tail):
            raise ValueError(f"out= needs increasing rows and shape {(rows.size, *tail)}, got {out.shape}")
        if out.dtype == ds.dtype and out.flags.c_contiguous:
            return _read_runs(ds, rows, layer, tail, out)
        out[...] = _read_runs(ds, rows, layer, tail, np.empty(out.shape, ds.dtype))
        return out
    if in_order:
        return _read_runs(ds, rows, layer, tail, np.empty((rows.size, *tail), ds.dtype))
    uniq, inverse = np.unique(rows, return_inverse=True)
    span = int(uniq[-1] - uniq[0] + 1)
    if uniq.size > 1 and span <= 2 * uniq.size:  # dense enough: one contiguous read
        sel = slice(int(uniq[0]), int(uniq[-1]) + 1)
        block = ds[sel] if layer is None else ds[sel, layer]
        return block[uniq - uniq[0]][inverse]
    return _read_runs(ds, uniq, layer, tail, np.empty((uniq.size, *tail), ds.dtype))[inverse]


def _read_runs(
    ds: h5py.Dataset, rows: np.ndarray, layer: int | None, tail: tuple, data: np.ndarray
) -> np.ndarray:
    """Fill ``data`` with increasing ``rows``, one HDF5 read per run of consecutive rows."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    space = ds.id.get_space()
    lead = () if layer is None else (int(layer),)
    for a, b in zip([0, *breaks.tolist()], [*breaks.tolist(), rows.size], strict=True):
        space.select_hyperslab((int(rows[a]), *lead, *(0,) * len(tail)), (b - a, *(1,) * len(lead), *tail))
        ds.id.read(h5py.h5s.create_simple((b - a, *tail)), space, data[a:b])
    return data


class LazyArray:
    """A row-indexable view of one HDF5 dataset that reopens itself after pickling (DataLoader workers)."""

    def __init__(
        self, path: str | Path, key: str, ndim: int | None = None, dtypes: tuple[str, ...] | None = None
    ):
        self.path, self.key, self._ndim, self._dtypes = str(path), key, ndim, dtypes
        self._file: h5py.File | None = None
        ds = self._ds()
        self.shape: tuple[int, ...] = tuple(ds.shape)
        self.dtype = ds.dtype

    def _ds(self) -> h5py.Dataset:
        if self._file is None:
            self._file = open_h5(self.path, chunk_cache=False)
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
