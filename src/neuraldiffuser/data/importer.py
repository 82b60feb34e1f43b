"""``import_dataset``: build the generic layout (docs/dataset-layout.md) from what a user has.

Betas as .npy/.npz/.mat/HDF5 arrays (trials × voxels, one file per subject), stimuli as an image folder or an
array of any size (greyscale or RGB), a train/test split (test image indices, or a column of a per-trial CSV),
optional captions or labels (a default caption otherwise). Stimuli are stored at their own size; greyscale is
recorded as ``"stimulus_mode": "L"`` so scores and outputs can return to it. Without betas the result is a
stimuli-only set (``"kind": "stimuli"``) for `zoo train`. docs/own-data.md walks through it.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import load_array, load_stimuli
from .layout import SubjectArrays, write_generic

DEFAULT_CAPTION = "an image"
TEST_WORDS = {
    "test": True,
    "testing": True,
    "train": False,
    "training": False,
    "1": True,
    "0": False,
    "true": True,
    "false": False,
}


@dataclass
class TrialColumns:
    """What a per-trial CSV gives for one subject (None where the column is absent)."""

    image: np.ndarray | None = None
    split: np.ndarray | None = None  # bool, True = test
    session: np.ndarray | None = None


def read_trial_columns(
    path: str | Path,
    split_column: str | None = "split",
    image_column: str | None = None,
    session_column: str | None = None,
) -> TrialColumns:
    """Columns of a CSV with one row per trial (in betas row order)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("trials CSV not found", where=str(path))
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames or []
    out = TrialColumns()
    for attr, col in (("split", split_column), ("image", image_column), ("session", session_column)):
        if col is None or (col not in fields and col == _DEFAULTS[attr]):  # a default column may be absent
            continue
        if col not in fields:
            raise DataError(
                f"no column '{col}' (columns: {', '.join(fields)})",
                where=str(path),
                fix=f"name the {attr} column with --{attr}-column",
            )
        values = [r[col].strip() for r in rows]
        if attr == "split":
            bad = sorted({v for v in values if v.lower() not in TEST_WORDS})
            if bad:
                raise DataError(
                    f"column '{col}' has values {bad[:5]}; expected train/test (or 0/1, false/true = test)",
                    where=str(path),
                )
            out.split = np.array([TEST_WORDS[v.lower()] for v in values], dtype=bool)
        else:
            try:
                setattr(out, attr, np.array([int(float(v)) for v in values], dtype=np.int64))
            except ValueError:
                raise DataError(f"column '{col}' holds a non-integer value", where=str(path)) from None
    return out


_DEFAULTS = {"split": "split", "image": "image", "session": "session"}


def read_captions_source(source, n_images: int) -> dict[int, list[str]]:
    """Captions from a JSON list/object or a text file with one caption per line (one per image)."""
    path = Path(source)
    if not path.is_file():
        raise DataError("captions file not found", where=str(path))
    if path.suffix.lower() == ".json":
        raw = json.loads(path.read_text())
        items = enumerate(raw) if isinstance(raw, list) else ((int(k), v) for k, v in raw.items())
        caps = {int(k): ([v] if isinstance(v, str) else list(v)) for k, v in items}
    else:
        caps = dict(enumerate([line.strip()] for line in path.read_text().splitlines() if line.strip()))
    missing = [i for i in range(n_images) if not caps.get(i)]
    if missing:
        raise DataError(
            f"{len(missing)} of {n_images} images have no caption (first: image {missing[0]})",
            where=str(path),
            fix="give one caption per image, or leave out --captions for a default caption",
        )
    return {i: caps[i] for i in range(n_images)}


def label_captions(labels: Sequence, n_images: int, template: str, where: str) -> dict[int, list[str]]:
    labels = list(np.asarray(labels).reshape(-1))
    if len(labels) != n_images:
        raise DataError(
            f"{len(labels)} labels for {n_images} images",
            where=where,
            fix="give one label per image, in image order",
        )
    return {i: [template.format(label=lab)] for i, lab in enumerate(labels)}


def _as_subjects(betas) -> dict[str, object]:
    if betas is None:
        return {}
    if isinstance(betas, Mapping):
        return dict(betas)
    if isinstance(betas, (list, tuple)):
        return {f"subj{i + 1:02d}": b for i, b in enumerate(betas)}
    return {"subj01": betas}


def _per_subject(value, name: str):
    return value.get(name) if isinstance(value, Mapping) else value


def _check_betas(betas: np.ndarray, where: str) -> np.ndarray:
    if betas.ndim != 2:
        raise DataError(
            f"betas have shape {betas.shape}; expected (trials, voxels)",
            where=where,
            fix="reshape or mask them to two dimensions first",
        )
    if not np.issubdtype(betas.dtype, np.number):
        raise DataError(f"betas have dtype {betas.dtype}; expected numbers", where=where)
    betas = betas.astype(np.float32)
    bad = ~np.isfinite(betas)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise DataError(
            f"betas hold {int(bad.sum())} NaN/infinite values (first at trial "
            f"{rows[0]}, voxel {cols[0]}; {len(np.unique(cols))} voxels affected)",
            where=where,
            fix="drop those voxels (e.g. betas[:, "
            "np.isfinite(betas).all(0)]) or impute them before importing",
        )
    return betas


def _test_flags(test, image: np.ndarray, cols: TrialColumns, n_images: int, where: str) -> np.ndarray:
    if cols.split is not None:
        return cols.split
    if test is None:
        raise DataError(
            "no train/test split",
            where=where,
            fix="give --test-images (image indices) or --trials-csv with a split column",
        )
    test_images = (
        np.asarray(
            load_array(test, "test image indices")
            if isinstance(test, (str, Path)) and not str(test).endswith(".txt")
            else (np.loadtxt(test, dtype=np.int64, ndmin=1) if isinstance(test, (str, Path)) else test)
        )
        .reshape(-1)
        .astype(np.int64)
    )
    out_of_range = test_images[(test_images < 0) | (test_images >= n_images)]
    if len(out_of_range):
        raise DataError(
            f"test image index {int(out_of_range[0])} out of range [0, {n_images})", where="test images"
        )
    return np.isin(image, test_images)


def build_subject(
    name: str,
    betas_src,
    n_images: int,
    image_index=None,
    test=None,
    trials_csv=None,
    split_column: str | None = "split",
    image_column: str | None = "image",
    session_column: str | None = "session",
) -> SubjectArrays:
    """One subject's arrays with every check: rows agree, images exist, both splits are present, no NaN."""
    where = str(betas_src) if not isinstance(betas_src, np.ndarray) else f"betas of {name}"
    betas = _check_betas(np.asarray(load_array(betas_src, "betas")), where)
    n = len(betas)
    cols = (
        read_trial_columns(trials_csv, split_column, image_column, session_column)
        if trials_csv is not None
        else TrialColumns()
    )
    for attr in ("split", "image", "session"):
        col = getattr(cols, attr)
        if col is not None and len(col) != n:
            raise DataError(
                f"trials CSV has {len(col)} rows but the betas have {n} trials",
                where=str(trials_csv),
                fix="one CSV row per betas row, in the same order",
            )
    if image_index is not None:
        image = (
            np.asarray(
                load_array(image_index, "image indices")
                if isinstance(image_index, (str, Path))
                else image_index
            )
            .reshape(-1)
            .astype(np.int64)
        )
        if len(image) != n:
            raise DataError(
                f"{len(image)} image indices for {n} trials",
                where=f"image indices of {name}",
                fix="one image index per betas row",
            )
    elif cols.image is not None:
        image = cols.image
    elif n == n_images:
        image = np.arange(n, dtype=np.int64)
    else:
        raise DataError(
            f"betas have {n} trials but there are {n_images} stimuli, and no trial → image mapping was given",
            where=where,
            fix="give --image-index (one stimulus index per trial) or an image column in "
            "--trials-csv; or check that the betas are (trials, voxels), not transposed",
        )
    bad = image[(image < 0) | (image >= n_images)]
    if len(bad):
        raise DataError(
            f"trial shows image {int(bad[0])}, but there are "
            f"only {n_images} stimuli (indices 0..{n_images - 1})",
            where=f"image indices of {name}",
            fix="an image is missing from the stimuli, or the indices are 1-based (subtract 1)",
        )
    is_test = _test_flags(test, image, cols, n_images, where)
    if is_test.all() or not is_test.any():
        raise DataError(
            f"the split puts all {n} trials in {'test' if is_test.all() else 'train'}",
            where=where,
            fix="both splits need trials",
        )
    if np.isin(image[is_test], image[~is_test]).any():
        raise DataError(
            "some images are in both the train and the test split",
            where=where,
            fix="split by image, not by trial",
        )
    session = cols.session if cols.session is not None else np.ones(n, dtype=np.int32)
    if session.min() < 1:
        raise DataError("session numbers must be 1-based", where=str(trials_csv))
    return SubjectArrays(
        betas=betas, image=image, session=session.astype(np.int32), split=np.where(is_test, "test", "train")
    )


def import_dataset(
    out: str | Path,
    stimuli,
    betas=None,
    *,
    image_index=None,
    test=None,
    trials_csv=None,
    split_column: str | None = "split",
    image_column: str | None = "image",
    session_column: str | None = "session",
    captions=None,
    labels=None,
    caption_template: str = "an image of {label}",
    default_caption: str = DEFAULT_CAPTION,
    overwrite: bool = False,
) -> Path:
    """Write ``out`` in the generic layout and return it.

    ``betas``: one source (subject ``subj01``), a list (subj01, subj02, …) or a mapping name → source; a
    source is an array or ``path[:key]``. ``image_index``, ``test``, ``trials_csv``: one value for all
    subjects or a mapping per subject. Trials default to showing stimulus i on betas row i. ``test``: test
    image indices. ``labels``: one per image, captioned by ``caption_template``; ``captions``: a JSON or text
    file; neither: ``default_caption``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DataError(
                "output folder is not empty", where=str(out), fix="choose a new folder (or pass --overwrite)"
            )
        shutil.rmtree(out)
    images, mode, names = load_stimuli(stimuli)
    n_images = len(images)
    if captions is not None and labels is not None:
        raise DataError("both captions and labels given", fix="give one of them")
    if captions is not None:
        caps = read_captions_source(captions, n_images)
    elif labels is not None:
        where = str(labels) if isinstance(labels, (str, Path)) else "labels"
        caps = label_captions(
            load_array(labels, "labels") if isinstance(labels, (str, Path)) else labels,
            n_images,
            caption_template,
            where,
        )
    else:
        caps = {i: [default_caption] for i in range(n_images)}
    subjects = {
        name: build_subject(
            name,
            src,
            n_images,
            _per_subject(image_index, name),
            _per_subject(test, name),
            _per_subject(trials_csv, name),
            split_column,
            image_column,
            session_column,
        )
        for name, src in _as_subjects(betas).items()
    }
    meta = {
        "kind": "fmri" if subjects else "stimuli",
        "stimulus_mode": mode,
        "stimulus_size": list(images.shape[1:3]),
        "imported_by": "neuraldiffuser import",
    }
    if names is not None:
        meta["image_files"] = names
    return write_generic(out, images, caps, subjects, meta=meta)
