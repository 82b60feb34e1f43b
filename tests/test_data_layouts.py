"""Both layouts read back exactly what was written, through the same interface."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from neuraldiffuser.data import VoxelScaler, open_dataset
from neuraldiffuser.data.dataset import pad_repeats


@pytest.mark.parametrize("layout_fixture", ["generic_dir", "mindeye2_dir"])
def test_read_back_exact_values(request, arrays, layout_fixture):
    images, captions, subjects = arrays
    ds = open_dataset(request.getfixturevalue(layout_fixture))
    assert ds.layout == ("generic" if layout_fixture == "generic_dir" else "mindeye2")
    assert list(ds.subjects) == ["subj01", "subj02"]
    assert len(ds.images) == 10 and ds.images.size == (8, 8)
    np.testing.assert_array_equal(ds.images.get([3, 0, 3]), images[[3, 0, 3]])
    assert ds.captions_of(4) == captions[4]
    for name, s in subjects.items():
        sub = ds.subject(name)
        assert sub.n_voxels == s.betas.shape[1] and sub.n_trials == len(s.betas)
        np.testing.assert_array_equal(sub.read(np.array([5, 2, 5])), s.betas[[5, 2, 5]])
        order = np.argsort(sub.trials.row)
        np.testing.assert_array_equal(sub.trials.image[order], s.image)
        np.testing.assert_array_equal(sub.trials.session[order], s.session)
        np.testing.assert_array_equal(sub.trials.split[order], s.split)
        # image 7 is seen at rows 2, 7, 10 → repeats 0, 1, 2
        np.testing.assert_array_equal(sub.trials.repeat[order][[2, 7, 10]], [0, 1, 2])
        np.testing.assert_array_equal(np.sort(sub.train_rows()), np.flatnonzero(s.split == "train"))
        np.testing.assert_array_equal(np.sort(sub.train_rows(sessions=1)), [0, 1, 3])


def test_mindeye2_float16_images_round_to_the_same_uint8(mindeye2_dir, arrays):
    ds = open_dataset(mindeye2_dir)
    np.testing.assert_array_equal(ds.images.get(np.arange(10)), arrays[0])


@pytest.mark.parametrize("layout_fixture", ["generic_dir", "mindeye2_dir"])
def test_test_set_groups_repeats_and_pads(request, arrays, layout_fixture):
    sub = open_dataset(request.getfixturevalue(layout_fixture)).subject("subj01")
    test = sub.test_set(repeats=3, order="first_seen")
    np.testing.assert_array_equal(test.images, [7, 8, 9])  # order of first appearance
    np.testing.assert_array_equal(test.rows, [[2, 7, 10], [5, 12, 5], [9, 9, 9]])
    np.testing.assert_array_equal(test.padded, [[0, 0, 0], [0, 0, 1], [0, 1, 1]])
    betas = arrays[2]["subj01"].betas
    avg = sub.test_betas(test, average="voxels")
    np.testing.assert_allclose(avg[0], betas[[2, 7, 10]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(avg[1], betas[[5, 12, 5]].mean(0), rtol=1e-6)
    per = sub.test_betas(test, average="outputs")
    assert per.shape == (3, 3, 6)
    np.testing.assert_array_equal(per[2], betas[[9, 9, 9]])


def test_sorted_order_and_pad_rule():
    assert pad_repeats([4], 3) == ([4, 4, 4], [False, True, True])
    assert pad_repeats([4, 5], 3) == ([4, 5, 4], [False, False, True])
    assert pad_repeats([1, 2, 3, 4], 3) == ([1, 2, 3], [False, False, False])


def test_sorted_test_order(generic_dir, tmp_path):
    sub = open_dataset(generic_dir).subject("subj02")
    assert sub.test_set(order="sorted").images.tolist() == [7, 8, 9]


def test_voxel_scaler_uses_training_rows_only(generic_dir, arrays, tmp_path):
    sub = open_dataset(generic_dir).subject("subj01")
    rows = sub.train_rows()
    scaler = VoxelScaler.fit(sub, rows)
    betas = arrays[2]["subj01"].betas.astype(np.float64)
    train = betas[np.sort(rows)]
    np.testing.assert_allclose(scaler.mean, train.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler.std, train.std(0), rtol=1e-5, atol=1e-5)
    z = scaler.transform(train.astype(np.float32))
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    scaler.save(tmp_path / "scaler.safetensors")
    again = VoxelScaler.load(tmp_path / "scaler.safetensors")
    np.testing.assert_array_equal(again.mean, scaler.mean)


def test_behav_rows_are_real_webdataset_samples(mindeye2_dir):
    tar = mindeye2_dir / "wds" / "subj01" / "new_test" / "0.tar"
    with tarfile.open(tar) as tf:
        names = tf.getnames()
        behav = np.load(io.BytesIO(tf.extractfile([n for n in names if n.endswith(".behav.npy")][0]).read()))
    assert behav.shape == (1, 17)
    assert {n.split(".", 1)[1] for n in names} == {
        "behav.npy",
        "past_behav.npy",
        "future_behav.npy",
        "olds_behav.npy",
    }
    # first test trial of subj01: row 2, image 7, session 1, shared flag set
    assert behav[0, 0] == 7 and behav[0, 5] == 2 and behav[0, 2] == 1 and behav[0, 16] == 1
    assert sorted(p.name for p in (mindeye2_dir / "wds" / "subj01" / "train").glob("*.tar")) == [
        "0.tar",
        "1.tar",
        "2.tar",
    ]


def test_roi_labels_survive_both_layouts(generic_dir, mindeye2_dir):
    for root in (generic_dir, mindeye2_dir):
        sub = open_dataset(root).subject("subj01")
        assert sub.roi.tolist() == ["V1", "higher", "V1", "higher", "V1", "higher"]
