"""`import`: users' arrays and image folders become the generic layout, read back exactly; bad inputs
give one-line errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from neuraldiffuser.cli.main import main
from neuraldiffuser.data import open_dataset
from neuraldiffuser.data.importer import import_dataset
from neuraldiffuser.errors import DataError


@pytest.fixture
def digits_like():
    """12 greyscale 28×28 stimuli, 12 trials × 30 voxels, images 9..11 are test."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    betas = rng.standard_normal((12, 30)).astype(np.float32)
    return images, betas


def test_npy_round_trip_greyscale(tmp_path, digits_like):
    images, betas = digits_like
    np.save(tmp_path / "stim.npy", images)
    np.save(tmp_path / "betas.npy", betas)
    root = import_dataset(
        tmp_path / "ds",
        tmp_path / "stim.npy",
        tmp_path / "betas.npy",
        test=[9, 10, 11],
        labels=list(range(12)),
    )
    ds = open_dataset(root)
    assert (
        ds.meta["stimulus_mode"] == "L" and ds.meta["stimulus_size"] == [28, 28] and ds.meta["kind"] == "fmri"
    )
    got = ds.images.get(np.arange(12))
    np.testing.assert_array_equal(got[..., 0], images)
    np.testing.assert_array_equal(got[..., 2], images)
    s = ds.subject("subj01")
    np.testing.assert_array_equal(s.read(np.arange(12)), betas)
    assert list(s.trials.split) == ["train"] * 9 + ["test"] * 3
    assert ds.captions_of(4) == ["an image of 4"]


def test_mat_h5_npz_folder_and_csv_split(tmp_path, digits_like):
    """Two subjects from .mat and HDF5 (keys named), RGB image folder, split and image order
    from a CSV column."""
    images, betas = digits_like
    folder = tmp_path / "img"
    folder.mkdir()
    rgb = np.stack([images, 255 - images, images // 2], axis=-1)
    for i in range(12):  # natural order: img2 before img10
        Image.fromarray(rgb[i]).save(folder / f"img{i}.png")
    scipy.io.savemat(tmp_path / "s1.mat", {"resp": betas[::-1].copy(), "other": np.zeros(3)})
    with h5py.File(tmp_path / "s2.h5", "w") as f:
        f["fmri/betas"] = betas[:, :20]
    order = np.arange(12)[::-1]
    (tmp_path / "t.csv").write_text(
        "stim,which\n" + "".join(f"{im},{'test' if im >= 9 else 'train'}\n" for im in order)
    )
    (tmp_path / "caps.txt").write_text("".join(f"digit {i}\n" for i in range(12)))
    root = import_dataset(
        tmp_path / "ds",
        folder,
        {"a": f"{tmp_path}/s1.mat:resp", "b": f"{tmp_path}/s2.h5:fmri/betas"},
        trials_csv={"a": tmp_path / "t.csv", "b": None},
        image_column="stim",
        split_column="which",
        test={"a": None, "b": [9, 10, 11]},
        captions=tmp_path / "caps.txt",
    )
    ds = open_dataset(root)
    assert ds.meta["stimulus_mode"] == "RGB" and ds.meta["image_files"][2] == "img2.png"
    np.testing.assert_array_equal(ds.images.get(10), rgb[10])
    a = ds.subject("a")
    np.testing.assert_array_equal(a.trials.image, order)
    np.testing.assert_allclose(
        a.read(np.array([0])), betas[11:12]
    )  # row 0 of the reversed betas shows image 11
    assert set(a.trials.image[a.trials.split == "test"]) == {9, 10, 11}
    assert ds.subject("b").n_voxels == 20 and ds.captions_of(3) == ["digit 3"]


def test_images_only_folder_is_a_stimuli_set(tmp_path, digits_like):
    images, _ = digits_like
    np.savez(tmp_path / "s.npz", x=images[:, None].astype(np.float32) / 255)  # (N, 1, H, W) floats in [0, 1]
    ds = open_dataset(import_dataset(tmp_path / "ds", tmp_path / "s.npz"))
    assert ds.meta["kind"] == "stimuli" and not ds.subjects and ds.captions_of(0) == ["an image"]
    np.testing.assert_array_equal(ds.images.get(5)[..., 1], images[5])


@pytest.mark.parametrize(
    "case, needle",
    [
        ("nan", "NaN"),
        ("rows", "12 trials but there are 11 stimuli"),
        ("format", "unknown betas format"),
        ("missing_image", "only 12 stimuli"),
        ("split", "no train/test split"),
        ("nifti", "NIfTI"),
        ("key", "which holds the betas"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, digits_like, case, needle):
    images, betas = digits_like
    np.save(tmp_path / "stim.npy", images[:11] if case == "rows" else images)
    if case == "nan":
        betas = betas.copy()
        betas[2, 5] = np.nan
    np.save(tmp_path / "b.npy", betas)
    betas_arg = {"format": "b.csv", "nifti": "b.nii.gz", "key": "b.npz"}.get(case, "b.npy")
    (tmp_path / "b.csv").write_text("1,2\n")
    (tmp_path / "b.nii.gz").write_bytes(b"x")
    np.savez(tmp_path / "b.npz", a=betas, c=betas)
    args = [
        "import",
        str(tmp_path / "ds"),
        "--stimuli",
        str(tmp_path / "stim.npy"),
        "--betas",
        str(tmp_path / betas_arg),
    ]
    if case == "missing_image":
        np.save(tmp_path / "idx.npy", np.r_[np.arange(11), 12])
        args += ["--image-index", str(tmp_path / "idx.npy")]
    if case != "split":
        args += ["--test-images", "9,10,11"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_cli_import_reports_counts(tmp_path, capsys, digits_like):
    images, betas = digits_like
    np.save(tmp_path / "stim.npy", images)
    np.save(tmp_path / "b.npy", betas)
    assert (
        main(
            [
                "import",
                str(tmp_path / "ds"),
                "--stimuli",
                str(tmp_path / "stim.npy"),
                "--betas",
                str(tmp_path / "b.npy"),
                "--test-images",
                "0,1",
            ]
        )
        == 0
    )
    assert "12 trials (10 train, 2 test) × 30 voxels" in capsys.readouterr().out
    with pytest.raises(DataError, match="not empty"):
        import_dataset(tmp_path / "ds", tmp_path / "stim.npy", tmp_path / "b.npy", test=[0])
