"""The target store round-trips rows, attributes and the image order."""

from __future__ import annotations

import numpy as np
import pytest

from neuraldiffuser.errors import DataError
from neuraldiffuser.targets.store import TargetStore, create_store, write_rows, write_store


def test_round_trip_and_lookup(tmp_path):
    rng = np.random.default_rng(0)
    images = np.array([7, 3, 11])
    vals = {
        "z": rng.standard_normal((3, 4, 2, 2)).astype(np.float32),
        "g": rng.standard_normal((3, 2, 5, 3)).astype(np.float16),
    }
    path = write_store(
        tmp_path / "d.hdf5", images, vals, attrs={"subject": "subj01", "guidance_layers": [0, 1]}
    )
    with TargetStore(path) as st:
        assert st.keys == ["z", "g"] and st.shape("g") == (2, 5, 3)
        assert st.attrs["subject"] == "subj01" and st.attrs["guidance_layers"] == [0, 1]
        np.testing.assert_array_equal(st.get_images("z", [11, 7]), vals["z"][[2, 0]])
        np.testing.assert_array_equal(st.get("g", [1]), vals["g"][[1]].astype(np.float32))
        assert st.done.all()
        with pytest.raises(DataError, match="image 5 is not in the store"):
            st.rows_of([5])
        with pytest.raises(DataError, match="no 'c' targets"):
            st.get("c", [0])


def test_incremental_rows_mark_done(tmp_path):
    path = tmp_path / "t.hdf5"
    create_store(path, np.arange(5), {"c": (2, 3)})
    write_rows(path, np.array([3, 1]), {"c": np.ones((2, 2, 3))})
    st = TargetStore(path, complete=False)
    assert st.done.tolist() == [False, True, False, True, False]
    assert st.get("c", [1, 3]).sum() == 12 and st.get("c", [0]).sum() == 0
