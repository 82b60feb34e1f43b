"""The target store: one HDF5 file holding z, c and/or g for a list of images (see docs/architecture.md).

``targets.hdf5`` (all stimulus images, written by ``extract``) and ``decoded.hdf5`` (test images,
written by ``decode`` and the baselines) share this format, so the sampler reads either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..data.h5 import h5_writer, open_h5, read_rows, require_dataset
from ..errors import DataError, RunError
from ..utils.storage import require_free_space, reserve

TARGET_KEYS = ("z", "c", "g", "z_mode")  # z_mode: the posterior mode beside a sampled z (train.z_target)


class TargetStore:
    """Read-only, lazy access to a target store."""

    def __init__(self, path: str | Path, complete: bool = True):
        """``complete``: refuse a store whose rows are not all written (every stage but
        ``extract``'s resume)."""
        self.path = Path(path)
        self._f = open_h5(self.path, chunk_cache=False)  # rows are read at random (training batches)
        self.image = require_dataset(self._f, "image", ndim=1)[()].astype(np.int64)
        self.keys = [k for k in TARGET_KEYS if k in self._f]
        if not self.keys:
            raise DataError(f"holds none of {', '.join(TARGET_KEYS)}", where=str(self.path))
        for k in self.keys:
            if self._f[k].shape[0] != len(self.image):
                raise DataError(
                    f"'{k}' has {self._f[k].shape[0]} rows but 'image' has {len(self.image)}",
                    where=f"{self.path}:{k}",
                )
        self.attrs: dict[str, Any] = {k: _decode_attr(v) for k, v in self._f.attrs.items()}
        self._row = {int(im): i for i, im in enumerate(self.image)}
        if complete:
            self.require_complete()

    def __len__(self) -> int:
        return len(self.image)

    def __repr__(self) -> str:
        return (
            f"TargetStore({self.path}, n={len(self)}, {', '.join(f'{k}{self.shape(k)}' for k in self.keys)})"
        )

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

    def require_complete(self) -> None:
        """Refuse an empty store, or one with rows never written (an interrupted or failed extraction)."""
        cmd = self.completing_command()
        if len(self) == 0:
            self.close()
            raise DataError(
                "the store holds no images",
                where=str(self.path),
                fix=f"write it again: `{cmd} --overwrite`" if cmd else "write it again",
            )
        missing = int((~self.done).sum())
        if missing:
            self.close()
            raise DataError(
                f"incomplete store: {missing} of {len(self)} rows "
                "were never written (an interrupted or failed run)",
                where=str(self.path),
                fix=f"complete it with `{cmd}`" if cmd else "run the command that wrote it again",
            )

    def require_made_from(self, dataset) -> None:
        """Refuse to pair this store with a dataset other than the one it was extracted from (when
        it recorded one)."""
        from ..data.fingerprint import dataset_fingerprint

        made_from = self.attrs.get("dataset_fingerprint")
        if made_from is None:
            return
        now = dataset_fingerprint(dataset)
        if now != made_from:
            raise DataError(
                "targets were extracted from another dataset "
                f"({self.attrs.get('dataset')}: {made_from}), not {dataset.root} ({now})",
                where=str(self.path),
                fix="extract targets for this dataset: `neuraldiffuser "
                f"extract {dataset.root} --out NEW.hdf5`",
            )

    def completing_command(self) -> str | None:
        """The command that resumes (completes) this store, from what it recorded."""
        if (
            "dataset" in self.attrs and "zoo_path" in self.attrs and "subject" not in self.attrs
        ):  # decoded stores carry a subject
            config = self.path.with_name(f"{self.path.stem}.config.yaml")  # saved by the extract command
            return f"neuraldiffuser extract {self.attrs['dataset']} --out {self.path}" + (
                f" --config {config}" if config.is_file() else ""
            )
        return None

    def rows_of(self, images) -> np.ndarray:
        """Rows holding these image indices (error naming the first missing one)."""
        out = np.empty(len(images), dtype=np.int64)
        for i, im in enumerate(np.asarray(images).tolist()):
            if im not in self._row:
                raise DataError(
                    f"image {im} is not in the store",
                    where=str(self.path),
                    fix="extract targets for every image the run uses",
                )
            out[i] = self._row[im]
        return out

    def get(
        self, key: str, rows, layer: int | None = None, dtype=np.float32, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows of one target (only ``[:, layer]`` when given) as ``dtype`` (None: as stored), or into ``out``
        (increasing rows); NaN or Inf is refused (it would train or sample to NaN without a word)."""
        rows = np.asarray(rows)
        data = read_rows(self._ds(key), rows, layer, out)
        self._check_finite(key, rows, data)
        return data if dtype is None or out is not None else data.astype(dtype, copy=False)

    def _check_finite(self, key: str, rows: np.ndarray, data: np.ndarray) -> None:
        bad = ~np.isfinite(data.reshape(len(data), -1)).all(axis=1)
        if bad.any():
            images = np.unique(self.image[rows[bad]])
            shown = ", ".join(str(i) for i in images[:8]) + (", …" if len(images) > 8 else "")
            cmd = self.completing_command()
            raise DataError(
                f"NaN/Inf in the targets of {len(images)} images ({shown})",
                where=f"{self.path}:{key}",
                fix=f"write the store again: `{cmd} --overwrite`"
                if cmd
                else "write the store again (what wrote it went wrong for those images)",
            )

    def get_images(
        self, key: str, images, layer: int | None = None, dtype=np.float32, out: np.ndarray | None = None
    ) -> np.ndarray:
        return self.get(key, self.rows_of(images), layer, dtype, out)

    def dtype(self, key: str) -> np.dtype:
        return self._ds(key).dtype

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
    name: str | Path | None = None,
) -> None:
    """Create an empty store (``done`` all False), chunked in ~1 MiB blocks of rows.

    Every block is allocated (and the file's disk space reserved) now, so that writing rows later
    changes no HDF5 metadata and cannot run out of space half way: a full disk fails here, at once.
    ``name``: the path errors name (the final one when ``path`` is a temporary).
    """
    dtypes = dict(dtypes or {})
    unknown = [k for k in shapes if k not in TARGET_KEYS]
    if unknown:
        raise ValueError(f"unknown target key {unknown[0]!r}")
    require_free_space(path, store_bytes(len(images), shapes, dtypes), "the target store", name=name)
    with h5_writer(path, "w", name=name) as f:
        f.create_dataset("image", data=np.asarray(images, dtype=np.int64))
        f.create_dataset("done", data=np.zeros(len(images), dtype=bool))
        for key, shape in shapes.items():
            dtype = np.dtype(dtypes.get(key, "float32"))
            rows = max(1, min(len(images), (1 << 20) // max(int(np.prod(shape)) * dtype.itemsize, 1)))
            f.create_dataset(
                key,
                shape=(len(images), *shape),
                dtype=dtype,
                chunks=(rows, *shape) if len(images) else None,
                dcpl=_preallocated(),
            )
        for k, v in (attrs or {}).items():
            f.attrs[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    reserve(path, name=name)


def _preallocated() -> h5py.h5p.PropDCID:
    """Blocks allocated at creation; their zeros written by HDF5 only where the OS cannot reserve
    space (no fallocate)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    if hasattr(os, "posix_fallocate"):
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def store_bytes(
    n: int, shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str] | None = None
) -> int:
    """Bytes a store of ``n`` images takes on disk (without HDF5's small metadata)."""
    dtypes = dict(dtypes or {})
    return n * (
        9 + sum(int(np.prod(s)) * np.dtype(dtypes.get(k, "float32")).itemsize for k, s in shapes.items())
    )


def write_rows(
    path: str | Path, rows: np.ndarray, values: Mapping[str, np.ndarray], name: str | Path | None = None
) -> None:
    """Write some rows of some targets, then mark them done: the flags are set only after the rows'
    data reached the file, so a failed or killed write leaves those rows not done (to be redone)."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows)
    note = f"the {rows.size} rows of this write stay marked not done (rows written before are kept)"
    try:
        with h5_writer(path, "a", name=name) as f:
            for key, val in values.items():
                ds = f[key]
                ds[rows[order]] = np.asarray(val)[order].astype(ds.dtype)
            f.flush()
            done = f["done"]
            flags = done[()]
            flags[rows] = True
            done[...] = flags
    except RunError as exc:
        raise RunError(f"{exc.what}; {note}", where=exc.where, fix=exc.fix) from None


def write_store(
    path: str | Path,
    images: np.ndarray,
    values: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete store in one go (decoded targets, tests), atomically."""
    from ..utils.io import atomic_path

    with atomic_path(path, suffix=".hdf5") as tmp:
        create_store(
            tmp,
            images,
            {k: v.shape[1:] for k, v in values.items()},
            {k: str(v.dtype) for k, v in values.items()},
            attrs,
            name=path,
        )
        write_rows(tmp, np.arange(len(images)), values, name=path)
    return Path(path)
