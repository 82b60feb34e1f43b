"""NSD as MindEye2 distributes it (HF ``pscotti/mindeyev2``), read into the common interface.

    ROOT/
      betas_all_subj0X_fp32_renorm.hdf5    "betas": (sessions*750, voxels) float32
      wds/subj0X/train/{0..}.tar           one shard per session; non-shared1000 trials
      wds/subj0X/new_test/0.tar            every shared1000 trial
      coco_images_224_float16.hdf5         "images": (73000, 3, 224, 224) float16 in [0, 1]
      captions.json                        image index → list of captions (see ``convert_nsd_captions``)
      voxel_rois.hdf5 (optional)           "<subject>": (voxels,) int16 ROI codes, attribute "names"

Each WebDataset sample holds ``behav.npy`` of shape (1, 17): column 0 is the 73k image index,
column 2 the session, column 5 the row in the betas file. Only those columns are used.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from ..utils.io import atomic_path, atomic_write_json
from .dataset import Dataset, ImageStore, SubjectData, TrialTable, check_trials
from .h5 import LazyArray, h5_writer
from .layout import SubjectArrays, read_captions, roi_labels, write_betas_h5, write_images_h5

BEHAV_COLUMNS = 17
COL_IMAGE, COL_SUBJECT, COL_SESSION, COL_RUN, COL_TRIAL, COL_ROW, COL_SHARED = 0, 1, 2, 3, 4, 5, 16
TRIALS_PER_SESSION = 750
BETAS_PATTERN = "betas_all_{subject}_fp32_renorm.hdf5"
IMAGES_FILE = "coco_images_224_float16.hdf5"


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _sample_key(name: str) -> tuple[str, str]:
    """WebDataset's naming: a member ``dir/KEY.EXT`` belongs to sample ``dir/KEY`` (KEY has no dot)."""
    folder, _, base = name.rpartition("/")
    key, _, ext = base.partition(".")
    return (f"{folder}/{key}" if folder else key), ext


def _bad_tar(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"unreadable or truncated tar ({exc.__class__.__name__}: {exc})",
        where=str(path),
        fix="re-download this shard",
    )


def read_behav_tar(path: Path) -> np.ndarray:
    """All ``behav.npy`` rows of one WebDataset shard, as an (n, 17) array in tar order.

    Read with ``tarfile`` rather than a ``webdataset`` pipeline: every process needs the whole (tiny)
    trial table, so nothing may be split across nodes or workers (webdataset's default node splitter
    refuses to run under RANK/WORLD_SIZE), and tarfile's own exceptions tell a broken tar apart from
    anything else without guessing from message text.
    """
    if not path.is_file():
        raise DataError(
            "file not found", where=str(path), fix="download the wds/ folder of MindEye2's dataset"
        )
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(
            f"cannot open ({exc.strerror or exc})", where=str(path), fix="check the file's permissions"
        ) from None
    behav: dict[str, bytes | None] = {}  # sample key -> behav.npy bytes, in tar order
    with fh:
        try:
            with tarfile.open(fileobj=fh, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, ext = _sample_key(member.name)
                    behav.setdefault(key, None)
                    if ext == "behav.npy":
                        behav[key] = tar.extractfile(member).read()
                end = tar.offset
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise _bad_tar(path, exc) from None
        fh.seek(end)
        if fh.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):  # cut at a member boundary
            raise _bad_tar(path, EOFError(f"no end-of-archive marker after {len(behav)} samples"))
    rows = []
    for key, raw in behav.items():
        if raw is None:
            raise DataError(f"sample {key!r} has no behav.npy", where=str(path), fix="re-download this shard")
        try:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise DataError(
                f"behav.npy of sample {key!r} is not a readable .npy array ({exc})",
                where=str(path),
                fix="re-download this shard",
            ) from None
        if arr.shape != (1, BEHAV_COLUMNS):
            raise DataError(
                f"behav.npy of sample {key!r} has shape {arr.shape}, expected (1, {BEHAV_COLUMNS})",
                where=str(path),
            )
        rows.append(arr[0])
    if not rows:
        raise DataError("shard holds no samples", where=str(path), fix="re-download this shard")
    return np.stack(rows)


def subject_names(root: Path) -> list[str]:
    """Subjects with a betas file; a subject with trials (wds/<subject>/) but no betas file is an
    error, not skipped."""
    names = sorted(
        {
            m.group(1)
            for p in root.glob("betas_all_*_fp32_renorm.hdf5")
            if (m := re.match(r"betas_all_(.+)_fp32_renorm\.hdf5", p.name))
        }
    )
    with_trials = (
        sorted(p.name for p in (root / "wds").iterdir() if p.is_dir()) if (root / "wds").is_dir() else []
    )
    missing = [s for s in with_trials if s not in names]
    if missing:
        files = ", ".join(BETAS_PATTERN.format(subject=s) for s in missing)
        raise DataError(
            f"{len(missing)} subject(s) with trials in wds/ have "
            f"no betas file: {', '.join(missing)} (missing {files})",
            where=str(root),
            fix=f"download {files} from MindEye2's dataset, or move wds/{missing[0]} "
            "out of the folder to use the other subjects without it",
        )
    if not names:
        raise DataError(
            "no betas_all_<subject>_fp32_renorm.hdf5 file",
            where=str(root),
            fix="download the betas files of MindEye2's dataset",
        )
    return names


def read_subject_trials(root: Path, subject: str) -> TrialTable:
    wds_dir = root / "wds" / subject
    train_tars = sorted((wds_dir / "train").glob("*.tar"), key=_natural_key)
    test_tar = wds_dir / "new_test" / "0.tar"
    if not train_tars:
        raise DataError(
            "no training shards (train/*.tar)",
            where=str(wds_dir / "train"),
            fix="download wds/<subject>/train/ of MindEye2's dataset",
        )
    behav = {"train": [read_behav_tar(t) for t in train_tars], "test": [read_behav_tar(test_tar)]}
    rows, images, sessions, splits = [], [], [], []
    for split, arrays in behav.items():
        for b in arrays:
            rows.append(b[:, COL_ROW])
            images.append(b[:, COL_IMAGE])
            sessions.append(b[:, COL_SESSION])
            splits.append(np.full(len(b), split))
    row = np.concatenate(rows).astype(np.int64)
    image = np.concatenate(images).astype(np.int64)
    if (row < 0).any() or (image < 0).any():
        raise DataError("behav column 0 (image) or 5 (betas row) holds -1 (missing)", where=str(wds_dir))
    return TrialTable.build(row, image, np.concatenate(sessions), np.concatenate(splits))


def read_mindeye2(root: Path, captions: str | Path | None = None) -> Dataset:
    images_arr = LazyArray(root / IMAGES_FILE, "images", ndim=4, dtypes=("float16", "float32", "uint8"))
    if images_arr.shape[1] != 3:
        raise DataError(
            f"expected (N, 3, H, W) images, got shape {images_arr.shape}", where=f"{images_arr.path}:images"
        )
    scale = 1.0 if images_arr.dtype == np.uint8 else 255.0
    images = ImageStore(images_arr, channels_first=True, scale=scale)
    caps = read_captions(Path(captions) if captions else root / "captions.json")
    roi_file = root / "voxel_rois.hdf5"
    subjects = {}
    for name in subject_names(root):
        betas = LazyArray(
            root / BETAS_PATTERN.format(subject=name), "betas", ndim=2, dtypes=("float32", "float16")
        )
        trials = read_subject_trials(root, name)
        check_trials(trials, betas.shape[0], len(images), str(root / "wds" / name))
        roi = None
        if roi_file.is_file():
            with h5py.File(roi_file, "r") as f:
                if name in f:
                    roi = roi_labels(f[name][()], json.loads(f[name].attrs.get("names", "[]")))
        subjects[name] = SubjectData(name, betas, trials, roi, source=str(root / "wds" / name))
    return Dataset(root, "mindeye2", subjects, images, caps)


def convert_nsd_captions(nsd_captions: str | Path, stim_info_csv: str | Path, out: str | Path) -> Path:
    """Re-key NSD's ``nsd_captions.json`` (COCO id → captions) by 73k index using
    ``nsd_stim_info_merged.csv``."""
    by_coco = json.loads(Path(nsd_captions).read_text())
    out_map: dict[str, list[str]] = {}
    with open(stim_info_csv, newline="") as f:
        reader = csv.DictReader(f)
        if "cocoId" not in (reader.fieldnames or []):
            raise DataError("missing column 'cocoId'", where=str(stim_info_csv))
        for i, row in enumerate(reader):
            caps = by_coco.get(str(row["cocoId"]))
            if caps:
                out_map[str(i)] = caps
    atomic_write_json(out, out_map)
    return Path(out)


# ---------------------------------------------------------------- writing (simulator, tests)


def _behav(
    image: int, subject: int, session: int, trial_in_session: int, row: int, shared: bool
) -> np.ndarray:
    b = np.full((1, BEHAV_COLUMNS), -1.0, dtype=np.float64)
    b[0, COL_IMAGE], b[0, COL_SUBJECT], b[0, COL_SESSION] = image, subject, session
    b[0, COL_TRIAL], b[0, COL_ROW], b[0, COL_SHARED] = trial_in_session, row, float(shared)
    b[0, COL_RUN] = 1 + trial_in_session // 63
    return b


def write_mindeye2(
    root: str | Path,
    images: np.ndarray,
    captions: Mapping[int, list[str]],
    subjects: Mapping[str, SubjectArrays],
    mtime: float | None = None,
) -> Path:
    """Write MindEye2's layout: betas hdf5 per subject, one train shard per session, new_test/0.tar.

    ``mtime`` fixes the tar members' modification time (reproducible, byte-identical shards).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_images_h5(root / IMAGES_FILE, images, channels_first=True, dtype=np.float16)
    atomic_write_json(root / "captions.json", {str(k): list(v) for k, v in captions.items()})
    roi_file = root / "voxel_rois.hdf5"
    if roi_file.exists():
        roi_file.unlink()
    for s_idx, (name, s) in enumerate(subjects.items(), start=1):
        write_mindeye2_subject(root, name, s_idx, s, mtime=mtime)
    return root


def write_mindeye2_subject(
    root: str | Path, name: str, s_idx: int, s: SubjectArrays, mtime: float | None = None
) -> None:
    """One subject's files of MindEye2's layout (betas, shards, its entry in voxel_rois.hdf5).

    ``s_idx`` is the 1-based subject number written to behav column 1. Lets a writer stream subjects
    one at a time; images and captions are written separately (``write_images_h5``, captions.json).
    """
    import webdataset as wds

    root = Path(root)
    write_betas_h5(root / BETAS_PATTERN.format(subject=name), s.betas.astype(np.float32))
    sdir = root / "wds" / name
    (sdir / "train").mkdir(parents=True, exist_ok=True)
    (sdir / "new_test").mkdir(parents=True, exist_ok=True)
    sessions = np.asarray(s.session)
    first_row = {se: int(np.flatnonzero(sessions == se)[0]) for se in np.unique(sessions)}
    samples: dict[str, list[dict]] = {}
    for row in range(len(s.betas)):
        se = int(sessions[row])
        is_test = s.split[row] == "test"
        behav = _behav(int(s.image[row]), s_idx, se, row - first_row[se], row, is_test)
        sample = {
            "__key__": f"sample{row:08d}",
            "behav.npy": behav,
            "past_behav.npy": np.full((15, BEHAV_COLUMNS), -1.0),
            "future_behav.npy": np.full((15, BEHAV_COLUMNS), -1.0),
            "olds_behav.npy": np.full((3, BEHAV_COLUMNS), -1.0),
        }
        shard = "new_test/0.tar" if is_test else f"train/{sorted(first_row).index(se)}.tar"
        samples.setdefault(shard, []).append(sample)
    for shard, items in samples.items():
        with atomic_path(sdir / shard, suffix=".tar") as tmp:
            with wds.TarWriter(str(tmp), mtime=mtime) as sink:
                for item in items:
                    sink.write(item)
    if s.roi is not None:
        with h5_writer(root / "voxel_rois.hdf5", "a") as f:
            if name in f:
                del f[name]
            ds = f.create_dataset(name, data=np.asarray(s.roi, dtype=np.int16))
            ds.attrs["names"] = json.dumps(list(s.roi_names or []))
