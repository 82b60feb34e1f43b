"""Bad inputs give one-line errors that name the file, key or column, and exit non-zero."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from neuraldiffuser.cli.main import main
from neuraldiffuser.data import open_dataset
from neuraldiffuser.errors import DataError


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(capsys, root, *needles):
    code, _, err = run_cli(capsys, "inspect", str(root))
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def test_missing_file(capsys, generic_dir):
    (generic_dir / "subjects" / "subj02" / "betas.hdf5").unlink()
    assert_one_line_error(capsys, generic_dir, "subj02/betas.hdf5", "file not found")


def test_missing_key(capsys, generic_dir):
    path = generic_dir / "images.hdf5"
    with h5py.File(path, "a") as f:
        f.move("images", "imgs")
    assert_one_line_error(capsys, generic_dir, "images.hdf5", "key 'images' not found", "imgs")


def test_wrong_dtype(capsys, generic_dir):
    path = generic_dir / "subjects" / "subj01" / "betas.hdf5"
    with h5py.File(path, "a") as f:
        data = f["betas"][()]
        del f["betas"]
        f["betas"] = data.astype(np.int32)
    assert_one_line_error(
        capsys, generic_dir, "betas.hdf5:betas", "expected dtype float32 or float16", "int32"
    )


def test_wrong_shape(capsys, generic_dir):
    path = generic_dir / "images.hdf5"
    with h5py.File(path, "a") as f:
        data = f["images"][()]
        del f["images"]
        f["images"] = data[..., :2]
    assert_one_line_error(capsys, generic_dir, "images.hdf5:images", "(N, H, W, 3)", "(10, 8, 8, 2)")


def test_nan_betas_are_refused_on_read_and_counted_by_inspect(capsys, generic_dir):
    path = generic_dir / "subjects" / "subj01" / "betas.hdf5"
    with h5py.File(path, "a") as f:
        f["betas"][4, 1] = np.nan
        f["betas"][6, 0] = np.inf
    sub = open_dataset(generic_dir).subject("subj01")
    with pytest.raises(DataError, match=r"2 NaN/Inf values in betas rows \[4, 6\]") as info:
        sub.read(np.arange(8))
    assert "betas.hdf5:betas" in str(info.value)
    sub.read(np.array([0, 1, 2]))  # clean rows still read
    code, out, _ = run_cli(capsys, "inspect", str(generic_dir), "--json")
    assert code == 0 and json.loads(out)["subjects"]["subj01"]["nonfinite"] == 2


def test_image_index_out_of_range(capsys, generic_dir):
    csv = generic_dir / "subjects" / "subj01" / "trials.csv"
    lines = csv.read_text().splitlines()
    lines[3] = "2,42,1,test,0"
    csv.write_text("\n".join(lines) + "\n")
    assert_one_line_error(capsys, generic_dir, "trials.csv", "image index 42 out of range [0, 10)")


def test_trial_table_not_matching_betas(capsys, generic_dir):
    csv = generic_dir / "subjects" / "subj01" / "trials.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:-2]) + "\n")
    assert_one_line_error(capsys, generic_dir, "trials.csv", "trial table has 11 rows but betas.hdf5 has 13")


def test_trial_table_missing_column(capsys, generic_dir):
    csv = generic_dir / "subjects" / "subj01" / "trials.csv"
    text = csv.read_text().replace("trial,image,session,split,repeat", "trial,img,session,split,repeat")
    csv.write_text(text)
    assert_one_line_error(capsys, generic_dir, "trials.csv", "missing column(s) image")


def test_empty_split(generic_dir):
    csv = generic_dir / "subjects" / "subj01" / "trials.csv"
    csv.write_text(csv.read_text().replace(",test,", ",train,"))
    sub = open_dataset(generic_dir).subject("subj01")
    with pytest.raises(DataError, match="no test trials") as info:
        sub.test_set()
    assert "subj01" in str(info.value)


def test_truncated_tar(capsys, mindeye2_dir):
    tar = mindeye2_dir / "wds" / "subj02" / "train" / "1.tar"
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2 + 100])
    assert_one_line_error(capsys, mindeye2_dir, "wds/subj02/train/1.tar", "truncated tar")


def test_mindeye2_row_beyond_betas(capsys, mindeye2_dir):
    path = mindeye2_dir / "betas_all_subj01_fp32_renorm.hdf5"
    with h5py.File(path, "a") as f:
        data = f["betas"][:5]
        del f["betas"]
        f["betas"] = data
    assert_one_line_error(capsys, mindeye2_dir, "wds/subj01", "betas row 12 but betas have 5 rows")


def test_not_a_dataset(capsys, tmp_path):
    assert_one_line_error(capsys, tmp_path, "not a dataset folder")


def test_unknown_subject_names_the_closest(generic_dir):
    with pytest.raises(DataError, match="did you mean 'subj01'"):
        open_dataset(generic_dir).subject("subj1")


def test_debug_shows_the_traceback(generic_dir):
    shutil.rmtree(generic_dir / "subjects" / "subj02")
    with pytest.raises(DataError):
        main(["--debug", "inspect", str(generic_dir)])
