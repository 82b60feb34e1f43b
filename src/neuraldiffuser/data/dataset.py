"""The in-memory interface every stage uses, whatever the on-disk layout."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError
from .h5 import LazyArray

SPLITS = ("train", "test")


@dataclass(frozen=True)
class TrialTable:
    """One row per trial: which betas row, which image, which session, which split, which repeat."""

    row: np.ndarray  # int64, row in the subject's betas array
    image: np.ndarray  # int64, index into the shared image store
    session: np.ndarray  # int32, 1-based session number
    split: np.ndarray  # '<U5', 'train' or 'test'
    repeat: np.ndarray  # int16, 0-based presentation count of this image for this subject

    def __len__(self) -> int:
        return len(self.row)

    @staticmethod
    def build(row, image, session, split) -> TrialTable:
        """Make a table, numbering repeats by order of presentation (betas row order)."""
        row = np.asarray(row, dtype=np.int64)
        image = np.asarray(image, dtype=np.int64)
        order = np.argsort(row, kind="stable")
        repeat = np.zeros(len(row), dtype=np.int16)
        seen: dict[int, int] = {}
        for i in order:
            k = int(image[i])
            repeat[i] = seen.get(k, 0)
            seen[k] = repeat[i] + 1
        return TrialTable(
            row, image, np.asarray(session, dtype=np.int32), np.asarray(split, dtype="<U5"), repeat
        )


@dataclass(frozen=True)
class TestSet:
    """Test images with their repeats gathered (padded by repetition where fewer were shown)."""

    images: np.ndarray  # (n,) image indices, in the order outputs are written
    rows: np.ndarray  # (n, R) betas rows
    padded: np.ndarray  # (n, R) bool: True where a row repeats an earlier one to fill R
    order: str

    def __len__(self) -> int:
        return len(self.images)


def pad_repeats(rows: list[int], n: int) -> tuple[list[int], list[bool]]:
    """Pad a list of repeat rows to ``n`` by cycling, as the reference does (1 → x3, 2 → a b a)."""
    if not rows:
        raise ValueError("no rows to pad")
    out = [rows[i % len(rows)] for i in range(max(n, len(rows)))][:n] if len(rows) < n else rows[:n]
    return out, [i >= len(rows) for i in range(n)]


class ImageStore:
    """Lazy access to the shared stimulus images, always returned as uint8 (N, H, W, 3)."""

    def __init__(self, array: LazyArray, channels_first: bool, scale: float):
        self.array, self.channels_first, self.scale = array, channels_first, scale
        shape = array.shape
        self.n = shape[0]
        self.size = (shape[2], shape[3]) if channels_first else (shape[1], shape[2])

    def __len__(self) -> int:
        return self.n

    def get(self, index) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        data = self.array.rows(idx)
        if self.channels_first:
            data = np.moveaxis(data, 1, -1)
        if data.dtype != np.uint8:
            data = np.clip(np.rint(data.astype(np.float32) * self.scale), 0, 255).astype(np.uint8)
        return data if np.ndim(index) else data[0]


class SubjectData:
    """One subject's betas (lazy), trial table and voxel ROI labels."""

    def __init__(self, name: str, betas: LazyArray, trials: TrialTable, roi: np.ndarray | None, source: str):
        self.name, self.betas, self.trials, self.roi, self.source = name, betas, trials, roi, source
        self.n_trials, self.n_voxels = betas.shape

    def __repr__(self) -> str:
        return f"SubjectData({self.name}, trials={len(self.trials)}, voxels={self.n_voxels})"

    @property
    def sessions(self) -> np.ndarray:
        return np.unique(self.trials.session)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Betas for these rows as float32, refusing NaN or Inf with the rows that hold them."""
        data = self.betas.rows(rows).astype(np.float32, copy=False)
        bad = ~np.isfinite(data)
        if bad.any():
            bad_rows = np.asarray(rows)[bad.any(axis=1)][:5]
            raise DataError(
                f"{int(bad.sum())} NaN/Inf values in betas rows {bad_rows.tolist()}",
                where=f"{self.betas.path}:{self.betas.key}",
                fix="fix or drop those trials; `neuraldiffuser inspect` counts them",
            )
        return data

    def train_rows(self, sessions: int | None = None, exclude_images: np.ndarray | None = None) -> np.ndarray:
        """Betas rows of training trials, optionally from the first ``sessions`` sessions only and without the
        trials of ``exclude_images``."""
        mask = self.trials.split == "train"
        if sessions is not None:
            keep = self.sessions[:sessions]
            mask &= np.isin(self.trials.session, keep)
        if exclude_images is not None:
            mask &= ~np.isin(self.trials.image, exclude_images)
        if not mask.any():
            what = "no training trials" + (f" in the first {sessions} sessions" if sessions else "")
            raise DataError(what, where=self.source, fix="check the trial table's split and session columns")
        return self.trials.row[mask]

    def train_images(self, sessions: int | None = None) -> np.ndarray:
        return self.image_of_rows(self.train_rows(sessions))

    def image_of_rows(self, rows: np.ndarray) -> np.ndarray:
        return _lookup(self.trials, rows)

    def test_set(self, repeats: int = 3, order: Literal["first_seen", "sorted"] = "first_seen") -> TestSet:
        """Group test trials by image; pad images seen fewer than ``repeats`` times by repetition."""
        mask = self.trials.split == "test"
        if not mask.any():
            raise DataError(
                "no test trials", where=self.source, fix="the trial table needs rows with split 'test'"
            )
        rows = self.trials.row[mask]
        images = self.trials.image[mask]
        by_row = np.argsort(rows, kind="stable")
        rows, images = rows[by_row], images[by_row]
        groups: dict[int, list[int]] = {}
        for r, im in zip(rows.tolist(), images.tolist(), strict=True):
            groups.setdefault(im, []).append(r)
        keys = list(groups) if order == "first_seen" else sorted(groups)
        out_rows, out_pad = [], []
        for k in keys:
            r, p = pad_repeats(groups[k], repeats)
            out_rows.append(r)
            out_pad.append(p)
        return TestSet(
            np.array(keys, dtype=np.int64),
            np.array(out_rows, dtype=np.int64),
            np.array(out_pad, dtype=bool),
            order,
        )

    def train_trials(self, image: int, n: int | None = None) -> np.ndarray:
        """Betas rows of one image's training trials in row order (the first ``n`` of them)."""
        mask = (self.trials.split == "train") & (self.trials.image == image)
        return np.sort(self.trials.row[mask])[:n]

    def holdout_set(self, n: int, seed: int, repeats: int = 3) -> TestSet:
        """``n`` training images drawn at random (``seed``) among those shown at least ``repeats`` times, each
        with its first ``repeats`` trials: a validation set at the test set's signal-to-noise ratio
        (``data.holdout_images``)."""
        uniq, counts = np.unique(self.trials.image[self.trials.split == "train"], return_counts=True)
        candidates = uniq[counts >= repeats]
        if n > len(candidates):
            raise DataError(
                f"{n} held-out images asked for, but only {len(candidates)} "
                f"training images were shown {repeats}+ times",
                where=f"{self.source} ({self.name})",
                fix="lower data.holdout_images",
            )
        chosen = np.sort(np.random.default_rng(seed).choice(candidates, size=n, replace=False)).astype(
            np.int64
        )
        grouped = np.array([self.train_trials(im, repeats) for im in chosen], dtype=np.int64).reshape(
            n, repeats
        )
        return TestSet(chosen, grouped, np.zeros(grouped.shape, dtype=bool), "holdout")

    def test_betas(self, test: TestSet, average: Literal["voxels", "outputs"] = "voxels") -> np.ndarray:
        """(n, V) repeat-averaged betas, or (n, R, V) per repeat for output averaging."""
        data = self.read(test.rows.reshape(-1)).reshape(*test.rows.shape, self.n_voxels)
        return data.mean(axis=1) if average == "voxels" else data


def _lookup(trials: TrialTable, rows: np.ndarray) -> np.ndarray:
    order = np.argsort(trials.row)
    pos = np.searchsorted(trials.row, rows, sorter=order)
    return trials.image[order[np.clip(pos, 0, len(order) - 1)]]


class Dataset:
    """Subjects, shared images and captions of one dataset folder."""

    def __init__(
        self,
        root: Path,
        layout: str,
        subjects: dict[str, SubjectData],
        images: ImageStore,
        captions: dict[int, list[str]],
        meta: dict | None = None,
    ):
        self.root, self.layout, self.subjects, self.images, self.captions = (
            root,
            layout,
            subjects,
            images,
            captions,
        )
        self.meta = meta or {}

    def __repr__(self) -> str:
        return (
            f"Dataset({self.root}, layout={self.layout}, "
            f"subjects={list(self.subjects)}, images={len(self.images)})"
        )

    def subject(self, name: str) -> SubjectData:
        if name not in self.subjects:
            guess = difflib.get_close_matches(name, list(self.subjects), n=1)
            raise DataError(
                f"no subject '{name}' (subjects: {', '.join(self.subjects)})",
                where=str(self.root),
                fix=f"did you mean '{guess[0]}'?" if guess else "set data.subject to one of them",
            )
        return self.subjects[name]

    def captions_of(self, image: int) -> list[str]:
        caps = self.captions.get(int(image))
        if not caps:
            raise DataError(
                f"no captions for image {image}",
                where=str(self.root),
                fix="every image needs at least one caption",
            )
        return caps


def detect_layout(root: Path) -> str:
    if (root / "dataset.json").is_file():
        return "generic"
    if (root / "wds").is_dir() or any(root.glob("betas_all_subj*_fp32_renorm.hdf5")):
        return "mindeye2"
    raise DataError(
        "not a dataset folder: no dataset.json (generic layout) and no "
        "wds/ folder or betas_all_subj*_fp32_renorm.hdf5 (MindEye2 layout)",
        where=str(root),
        fix="point at the folder that holds them (see docs/dataset-layout.md), "
        "or create one with `neuraldiffuser simulate`",
    )


def open_dataset(path: str | Path, layout: str = "auto", captions: str | Path | None = None) -> Dataset:
    """Open a dataset folder in either layout; nothing but small tables is read eagerly.

    ``layout``: 'auto' (detected), 'generic' or 'mindeye2'. The result gives ``subjects`` (names),
    ``subject(name)`` → betas by row (``read(rows)``: (n, n_voxels) float32, NSD's z-scored units or as
    written), trial tables, ``test_set`` / ``test_betas``; ``images.get(indices)`` → (n, H, W, 3) uint8
    stimuli; and ``captions_of(index)`` → list of str.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(
            "dataset folder not found",
            where=str(root),
            fix="give the folder created by `neuraldiffuser simulate` or the MindEye2 download",
        )
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "generic":
        from .layout import read_generic

        return read_generic(root)
    if layout == "mindeye2":
        from .nsd import read_mindeye2

        return read_mindeye2(root, captions=captions)
    raise DataError(f"unknown layout '{layout}'", fix="use auto, generic or mindeye2")


def check_trials(trials: TrialTable, n_rows: int, n_images: int, where: str) -> None:
    """Refuse trial tables that do not fit their betas array or the image store."""
    if len(trials) == 0:
        raise DataError("trial table is empty", where=where)
    if trials.row.min() < 0 or trials.row.max() >= n_rows:
        raise DataError(
            f"trial table points at betas row {int(trials.row.max())} but betas have {n_rows} rows",
            where=where,
            fix="the trial table and the betas file do not belong together",
        )
    if len(np.unique(trials.row)) != len(trials.row):
        raise DataError("trial table lists the same betas row twice", where=where)
    if trials.image.min() < 0 or trials.image.max() >= n_images:
        bad = int(trials.image.max()) if trials.image.max() >= n_images else int(trials.image.min())
        raise DataError(
            f"image index {bad} out of range [0, {n_images})",
            where=where,
            fix="the image store has fewer images than the trials refer to",
        )
    bad_split = set(np.unique(trials.split)) - set(SPLITS)
    if bad_split:
        raise DataError(f"split values {sorted(bad_split)} are not 'train' or 'test'", where=where)
