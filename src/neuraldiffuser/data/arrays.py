"""Read a user's arrays and image folders: .npy, .npz, .mat (scipy.io), HDF5, and folders of image files.

A source is a path with an optional key after a colon (``betas.mat:resp``, ``data.h5:/fmri/betas``); without a
key a file must hold exactly one array. Every error names the file, the key and what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DataError

ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5", ".hdf")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def split_source(source: str | Path) -> tuple[Path, str | None]:
    """``"file.mat:key"`` → (Path("file.mat"), "key"); a plain path (or an existing one with a
    colon) has no key."""
    text = str(source)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, key = text.rsplit(":", 1)
    return Path(path), key or None


def load_array(source: str | Path | np.ndarray, what: str = "array") -> np.ndarray:
    """One array from a file (or an array given as is). ``what`` names it in errors ("betas", "stimuli")."""
    if isinstance(source, np.ndarray):
        return source
    path, key = split_source(source)
    if not path.exists():
        raise DataError(
            f"{what} file not found", where=str(path), fix="give an existing .npy, .npz, .mat or .h5 file"
        )
    suffix = (
        "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".nii.gz") else path.suffix.lower()
    )
    if suffix in (".nii", ".nii.gz"):
        raise DataError(
            f"NIfTI {what} are not read directly",
            where=str(path),
            fix="mask them into a (trials, voxels) array first, e.g. "
            "nilearn.maskers.NiftiMasker(mask).fit_transform(img), and save it with numpy.save",
        )
    if suffix == ".npy":
        return _no_key(np.load(path, allow_pickle=False), key, path)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return np.asarray(f[_pick(list(f.files), key, path, what)])
    if suffix == ".mat":
        return _load_mat(path, key, what)
    if suffix in (".h5", ".hdf5", ".hdf"):
        return _load_h5(path, key, what)
    raise DataError(
        f"unknown {what} format '{path.suffix}'",
        where=str(path),
        fix=f"use one of {', '.join(ARRAY_SUFFIXES)}",
    )


def _no_key(arr: np.ndarray, key: str | None, path: Path) -> np.ndarray:
    if key:
        raise DataError(
            f"a .npy file holds one array; key '{key}' makes no sense",
            where=str(path),
            fix="drop the ':key' part",
        )
    return arr


def _pick(names: list[str], key: str | None, path: Path, what: str) -> str:
    if key is not None:
        if key not in names:
            raise DataError(
                f"no array '{key}' (arrays: {', '.join(names) or 'none'})",
                where=str(path),
                fix=f"write {path}:<name> with one of them",
            )
        return key
    if len(names) != 1:
        raise DataError(
            f"{len(names)} arrays ({', '.join(names) or 'none'}); which holds the {what}?",
            where=str(path),
            fix=f"write {path}:<name>",
        )
    return names[0]


def _load_mat(path: Path, key: str | None, what: str) -> np.ndarray:
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5 (stored transposed)
        return _load_h5(path, key, what).T
    except Exception as exc:  # noqa: BLE001 - scipy raises several types for unreadable files
        raise DataError(f"cannot read as a MATLAB file ({exc})", where=str(path)) from None
    names = [k for k in data if not k.startswith("__")]
    return np.asarray(data[_pick(names, key, path, what)])


def _load_h5(path: Path, key: str | None, what: str) -> np.ndarray:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot open as HDF5 ({exc})", where=str(path)) from None
    with f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        name = _pick(names, key.strip("/") if key else None, path, what)
        return f[name][()]


def natural_key(path: Path) -> list:
    """'img2.png' sorts before 'img10.png'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise DataError(
            "no image files",
            where=str(folder),
            fix=f"put the stimuli there as {', '.join(IMAGE_SUFFIXES)} files",
        )
    return files


def load_stimuli(source: str | Path | np.ndarray | list) -> tuple[np.ndarray, str, list[str] | None]:
    """Stimuli as uint8 (N, H, W, 3), their mode ('L' greyscale or 'RGB') and, for a folder, the file names.

    Accepts a folder of images (natural name order; all of one size), a list of image paths, or an array
    (N, H, W), (N, H, W, 1|3) or (N, 1|3, H, W), uint8 or float in [0, 1] (or [0, 255]).
    """
    from PIL import Image

    if isinstance(source, (str, Path)) and Path(source).is_dir():
        files = image_files(Path(source))
    elif isinstance(source, list):
        files = [Path(p) for p in source]
    else:
        return (
            *to_uint8_images(
                load_array(source, "stimuli"),
                str(source) if not isinstance(source, np.ndarray) else "stimuli",
            ),
            None,
        )
    arrays, modes = [], set()
    for p in files:
        if not p.is_file():
            raise DataError("image file not found", where=str(p))
        try:
            with Image.open(p) as im:
                modes.add("L" if im.mode in ("L", "1", "I", "I;16", "F", "LA") else "RGB")
                arrays.append(np.asarray(im.convert("RGB")))
        except OSError as exc:
            raise DataError(f"cannot read as an image ({exc})", where=str(p)) from None
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        raise DataError(
            f"images have {len(sizes)} different sizes "
            f"({', '.join(f'{w}×{h}' for h, w in sorted(sizes)[:4])})",
            where=str(files[0].parent),
            fix="resize them to one size first (the stack's own "
            "resize/pad policy then applies, docs/own-data.md)",
        )
    images = np.stack(arrays)
    mode = "L" if modes == {"L"} or _is_grey(images) else "RGB"
    return images, mode, [p.name for p in files]


def _is_grey(images: np.ndarray) -> bool:
    return bool(
        np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])
    )


def to_uint8_images(arr: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """(N, H, W) / (N, H, W, C) / (N, C, H, W) with C in {1, 3} → uint8 (N, H, W, 3) and the mode."""
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 1, -1)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DataError(
            f"stimuli array has shape {arr.shape}; expected (N, H, W), (N, H, W, 1|3) or (N, 1|3, H, W)",
            where=where,
        )
    if arr.dtype != np.uint8:
        x = arr.astype(np.float64)
        if not np.isfinite(x).all():
            raise DataError("stimuli hold NaN or infinite values", where=where)
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"stimuli values span [{lo:.3g}, {hi:.3g}]; expected [0, 1] or [0, 255]",
                where=where,
                fix="rescale them first",
            )
        scale = 255.0 if hi <= 1.0 else 1.0
        arr = np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
    mode = "L" if arr.shape[-1] == 1 else ("L" if _is_grey(arr) else "RGB")
    return (np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr), mode
