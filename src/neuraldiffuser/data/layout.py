"""Our generic on-disk layout (see docs/dataset-layout.md).

DATASET/
  dataset.json                    {"layout": "neuraldiffuser-generic", "version": 1, "subjects": [...]}
  images.hdf5                     "images": (N, H, W, 3) uint8, chunked one image per chunk
  captions.json                   {"<image index>": ["caption", ...], ...}
  subjects/<name>/betas.hdf5      "betas": (trials, voxels) float32|float16, chunked by rows;
                                  optional "roi": (voxels,) int16 codes, attribute "names" (JSON list)
  subjects/<name>/trials.csv      trial,image,session,split,repeat   (trial = betas row)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from ..utils.io import atomic_path, atomic_write_json, atomic_write_text
from .dataset import Dataset, ImageStore, SubjectData, TrialTable, check_trials
from .h5 import LazyArray, h5_writer

LAYOUT_NAME = "neuraldiffuser-generic"
TRIAL_COLUMNS = ("trial", "image", "session", "split", "repeat")
BETA_DTYPES = ("float32", "float16")


@dataclass
class SubjectArrays:
    """What a writer needs for one subject (the simulator and tests build these)."""

    betas: np.ndarray  # (trials, voxels)
    image: np.ndarray  # (trials,)
    session: np.ndarray  # (trials,)
    split: np.ndarray  # (trials,) 'train' | 'test'
    roi: np.ndarray | None = None  # (voxels,) int codes
    roi_names: list[str] | None = None


# ---------------------------------------------------------------- reading


def read_trials_csv(path: Path) -> TrialTable:
    if not path.is_file():
        raise DataError("file not found", where=str(path), fix="each subject folder needs trials.csv")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in TRIAL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"missing column(s) {', '.join(missing)} (expected {','.join(TRIAL_COLUMNS)})",
                where=str(path),
            )
        rows = list(reader)
    try:
        trial = np.array([int(r["trial"]) for r in rows], dtype=np.int64)
        image = np.array([int(r["image"]) for r in rows], dtype=np.int64)
        session = np.array([int(r["session"]) for r in rows], dtype=np.int32)
        repeat = np.array([int(r["repeat"]) for r in rows], dtype=np.int16)
    except ValueError as exc:
        raise DataError(f"non-integer value in an integer column ({exc})", where=str(path)) from None
    split = np.array([r["split"] for r in rows], dtype="<U5")
    return TrialTable(trial, image, session, split, repeat)


def read_roi(f: h5py.File) -> tuple[np.ndarray | None, list[str] | None]:
    if "roi" not in f:
        return None, None
    codes = f["roi"][()]
    names = json.loads(f["roi"].attrs.get("names", "[]"))
    return codes, names


def roi_labels(codes: np.ndarray | None, names: list[str] | None) -> np.ndarray | None:
    if codes is None:
        return None
    return np.asarray(names, dtype=object)[codes] if names else codes.astype(str)


def read_generic(root: Path) -> Dataset:
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read dataset.json ({exc})", where=str(meta_path)) from None
    if meta.get("layout") != LAYOUT_NAME:
        raise DataError(f"'layout' is {meta.get('layout')!r}, expected {LAYOUT_NAME!r}", where=str(meta_path))
    images_arr = LazyArray(root / "images.hdf5", "images", ndim=4, dtypes=("uint8",))
    if images_arr.shape[-1] != 3:
        raise DataError(
            f"expected (N, H, W, 3) images, got shape {images_arr.shape}", where=f"{images_arr.path}:images"
        )
    images = ImageStore(images_arr, channels_first=False, scale=1.0)
    captions = read_captions(root / "captions.json")
    subjects = {}
    for name in meta.get("subjects", []):
        sdir = root / "subjects" / name
        betas = LazyArray(sdir / "betas.hdf5", "betas", ndim=2, dtypes=BETA_DTYPES)
        trials = read_trials_csv(sdir / "trials.csv")
        where = str(sdir / "trials.csv")
        if len(trials) != betas.shape[0] or not np.array_equal(
            np.sort(trials.row), np.arange(betas.shape[0])
        ):
            raise DataError(
                f"trial table has {len(trials)} rows but betas.hdf5 has "
                f"{betas.shape[0]}; 'trial' must list each betas row once",
                where=where,
                fix="regenerate trials.csv for this betas file",
            )
        check_trials(trials, betas.shape[0], len(images), where)
        codes, names = read_roi(betas._ds().file)
        if codes is not None and codes.shape != (betas.shape[1],):
            raise DataError(
                f"roi has shape {codes.shape}, expected ({betas.shape[1]},)", where=f"{betas.path}:roi"
            )
        subjects[name] = SubjectData(name, betas, trials, roi_labels(codes, names), source=str(sdir))
    if not subjects and meta.get("kind") != "stimuli":  # a stimuli-only set (images + captions) may have none
        raise DataError("'subjects' lists no subject", where=str(meta_path))
    return Dataset(root, "generic", subjects, images, captions, meta)


def read_captions(path: Path) -> dict[int, list[str]]:
    if not path.is_file():
        raise DataError(
            "file not found", where=str(path), fix="captions.json maps image index → list of captions"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc})", where=str(path)) from None
    if not isinstance(raw, dict):
        raise DataError("expected a JSON object mapping image index to a list of captions", where=str(path))
    out: dict[int, list[str]] = {}
    for key, caps in raw.items():
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise DataError(f"captions of image {key!r} must be a list of strings", where=str(path))
        try:
            out[int(key)] = caps
        except ValueError:
            raise DataError(f"key {key!r} is not an image index", where=str(path)) from None
    return out


# ---------------------------------------------------------------- writing


def write_images_h5(
    path: Path, images: np.ndarray, key: str = "images", channels_first: bool = False, dtype=np.uint8
) -> None:
    """Write an image store atomically, chunked one image per chunk."""
    with atomic_path(path) as tmp, h5_writer(tmp, "w", name=path) as f:
        data = np.moveaxis(images, -1, 1) if channels_first else images
        if dtype != np.uint8:
            data = (data.astype(np.float32) / 255.0).astype(dtype)
        f.create_dataset(key, data=data, chunks=(1, *data.shape[1:]))


def write_betas_h5(path: Path, betas: np.ndarray, key: str = "betas", roi=None, roi_names=None) -> None:
    rows = max(1, min(len(betas), (1 << 20) // max(1, betas.shape[1] * betas.itemsize)))  # ~1 MiB chunks
    with atomic_path(path) as tmp, h5_writer(tmp, "w", name=path) as f:
        f.create_dataset(key, data=betas, chunks=(rows, betas.shape[1]))
        if roi is not None:
            ds = f.create_dataset("roi", data=np.asarray(roi, dtype=np.int16))
            ds.attrs["names"] = json.dumps(list(roi_names or []))


def write_trials_csv(path: Path, trials: TrialTable) -> None:
    lines = [",".join(TRIAL_COLUMNS)]
    for t, im, se, sp, rp in zip(
        trials.row, trials.image, trials.session, trials.split, trials.repeat, strict=True
    ):
        lines.append(f"{t},{im},{se},{sp},{rp}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_generic(
    root: str | Path,
    images: np.ndarray,
    captions: Mapping[int, list[str]],
    subjects: Mapping[str, SubjectArrays],
    meta: Mapping | None = None,
) -> Path:
    """Write a dataset in the generic layout. Betas rows are trials in presentation order."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    write_images_h5(root / "images.hdf5", images)
    atomic_write_json(root / "captions.json", {str(k): list(v) for k, v in captions.items()})
    for name, s in subjects.items():
        sdir = root / "subjects" / name
        sdir.mkdir(parents=True, exist_ok=True)
        write_betas_h5(sdir / "betas.hdf5", s.betas, roi=s.roi, roi_names=s.roi_names)
        trials = TrialTable.build(np.arange(len(s.betas)), s.image, s.session, s.split)
        write_trials_csv(sdir / "trials.csv", trials)
    doc = {
        "layout": LAYOUT_NAME,
        "version": 1,
        "subjects": list(subjects),
        "n_images": int(len(images)),
        "image_size": list(images.shape[1:3]),
    }
    doc.update(meta or {})
    atomic_write_json(root / "dataset.json", doc)
    return root
