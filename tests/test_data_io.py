"""The training data path: row reads equal numpy's fancy indexing, preloading is budgeted and
changes no value."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.data import VoxelScaler, open_dataset
from neuraldiffuser.data.h5 import open_h5, read_rows
from neuraldiffuser.targets.store import TargetStore, create_store, write_rows
from neuraldiffuser.training.batches import TrainingData
from neuraldiffuser.training.runner import make_pool


def test_read_rows_equals_fancy_indexing(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((97, 3, 5, 4)).astype(np.float16)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=(4, 3, 5, 4))
    with open_h5(tmp_path / "a.h5", chunk_cache=False) as f:
        ds = f["x"]
        cases = [
            rng.integers(0, 97, 42),
            np.array([5, 3, 3, 4, 60, 61, 62, 7]),
            np.array([96]),
            np.arange(10, 30)[::-1],
            rng.permutation(97),
        ]
        for rows in cases:
            for layer in (None, 0, 2):
                want = data[rows] if layer is None else data[rows, layer]
                got = read_rows(ds, rows, layer)
                assert got.dtype == data.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want)
        assert read_rows(ds, np.array([], dtype=np.int64), 1).shape == (0, 5, 4)


@pytest.fixture
def stage_data(tmp_path):
    ds_dir, targets, _ = make_decoder_data(tmp_path)
    config = tiny_config(ds_dir)
    ds = open_dataset(ds_dir)
    pools = []
    for name in ("subj02", "subj03"):
        subj = ds.subject(name)
        pools.append(make_pool(ds, name, VoxelScaler.fit(subj, subj.train_rows()), config))
    heads = {"c": ("c", None), "g0": ("g", 0), "g1": ("g", 1), "z": ("z", None)}
    return pools, TargetStore(targets), heads


def batches(data: TrainingData, steps: int = 3):
    plan = data.epoch_plan(3, 1, 0, steps, 6)
    return [data.global_batch(plan, k) for k in range(steps)]


def test_preloaded_and_lazy_batches_are_identical(stage_data):
    pools, store, heads = stage_data
    lazy = TrainingData(pools, store, heads, preload_gb=0.0)
    assert all(p.voxels is None for p in pools) and not lazy._targets
    assert "in RAM (train.preload_gb=0): nothing; read from disk per batch" in lazy.preload_note
    want = batches(lazy)
    full = TrainingData(pools, store, heads, preload_gb=1.0)
    assert all(p.voxels is not None for p in pools) and set(full._targets) == set(heads)
    assert (
        full._targets["g1"].dtype == np.float32
    )  # fp16 in the store, float32 in RAM: a batch is a bare gather
    assert "read from disk" not in full.preload_note
    for a, b in zip(want, batches(full), strict=True):
        for va, vb in zip(a["voxels"], b["voxels"], strict=True):
            np.testing.assert_array_equal(va, vb)
        assert a["targets"].keys() == b["targets"].keys() == heads.keys()
        for h in heads:
            assert b["targets"][h].dtype == np.float32
            np.testing.assert_array_equal(a["targets"][h], b["targets"][h])
    np.testing.assert_array_equal(want[0]["targets"]["g1"], store.get_images("g", want[0]["images"])[:, 1])


def test_budget_takes_smallest_first_and_a_model_view_drops_other_heads(stage_data):
    pools, store, heads = stage_data
    data = TrainingData(pools, store, heads, preload_gb=0.0)
    images = len(data._images())
    sizes = {"g0": images * 5 * 6 * 4, "c": images * 32 * 4, "z": images * 256 * 4}
    sizes.update({p.name: len(p.rows) * p.subject.n_voxels * 4 for p in pools})
    assert sorted(sizes, key=sizes.get) == ["subj02", "subj03", "g0", "c", "z"]
    data.preload_gb = (
        sizes["g0"] + sizes["subj02"] + sizes["subj03"] + 10
    ) / 2**30  # room for the three smallest
    note = data.restrict(["g0", "c", "z"]).preload()
    assert set(data._targets) == {"g0"} and [p.voxels is not None for p in pools] == [True, True]
    assert note.startswith(
        f"data in RAM (train.preload_gb={data.preload_gb:g}): "
        "betas subj02 7 kB, betas subj03 8 kB, target g0 11 kB;"
    )
    assert "; read from disk per batch (over the budget): target c" in note and note.endswith(
        f"target z {sizes['z'] / 2**10:.0f} kB"
    )
    data.release()
    z_only = data.restrict(["z"])
    z_only.preload_gb = (sizes["z"] + sizes["subj02"] + sizes["subj03"] + 10) / 2**30
    z_only.preload()
    assert set(data._targets) == {"z"}  # the previous model's heads are dropped before loading this one's
    assert [p.voxels is not None for p in pools] == [True, True]
    data.release()
    assert not data._targets and [p.voxels is None for p in pools] == [True, True]


def test_preloading_does_not_copy_the_whole_array(tmp_path):
    n, shape = 600, (6, 50, 64)
    create_store(tmp_path / "t.hdf5", np.arange(n), {"g": shape}, {"g": "float16"})
    write_rows(tmp_path / "t.hdf5", np.arange(n), {"g": np.ones((n, *shape), np.float16)})
    store = TargetStore(tmp_path / "t.hdf5")
    data = TrainingData([], store, {"g2": ("g", 2)}, preload=False)
    array = n * 50 * 64 * 4
    tracemalloc.start()
    data._load_head("g2", np.arange(n))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data._targets["g2"].nbytes == array
    assert peak < 1.6 * array, peak / array  # the array, plus one block of 256 images read at a time
