"""The MindEye2 shard reader: works under any launch environment, and names broken shards without
misattributing other errors."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from neuraldiffuser.cli.main import main
from neuraldiffuser.data import open_dataset
from neuraldiffuser.data.nsd import read_behav_tar
from neuraldiffuser.errors import DataError


def test_reads_under_a_multi_process_launch_environment(monkeypatch, mindeye2_dir, capsys):
    single = open_dataset(mindeye2_dir).subject("subj01").trials
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    launched = open_dataset(mindeye2_dir).subject("subj01").trials
    # every process reads every trial: nothing is split across ranks
    np.testing.assert_array_equal(launched.row, single.row)
    np.testing.assert_array_equal(launched.image, single.image)
    assert len(launched.row) == 13
    assert main(["inspect", str(mindeye2_dir)]) == 0, capsys.readouterr().err


def shard_members(path):
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data))


def test_cut_at_a_member_boundary_is_a_truncated_tar(mindeye2_dir):
    tar = mindeye2_dir / "wds" / "subj01" / "train" / "0.tar"
    assert read_behav_tar(tar).shape == (3, 17)
    with tarfile.open(tar) as t:
        first_sample_end = t.getmembers()[4].offset  # the second sample's first header: a clean boundary
    tar.write_bytes(tar.read_bytes()[:first_sample_end])
    with pytest.raises(DataError, match=r"truncated tar .*no end-of-archive marker after 1 samples") as info:
        read_behav_tar(tar)
    assert "re-download this shard" in str(info.value)


def test_other_problems_are_not_called_a_broken_tar(mindeye2_dir):
    tar = mindeye2_dir / "wds" / "subj01" / "train" / "0.tar"
    members = shard_members(tar)
    behav = [i for i, (m, _) in enumerate(members) if m.name.endswith(".behav.npy")]
    # a sample without behav.npy
    write_tar(tar, [mb for i, mb in enumerate(members) if i != behav[1]])
    with pytest.raises(DataError, match=r"sample 'sample00000001' has no behav.npy") as info:
        read_behav_tar(tar)
    assert "truncated" not in str(info.value)
    # a behav.npy that is not a .npy array
    bad = [(m, b"not an array" if i == behav[0] else data) for i, (m, data) in enumerate(members)]
    for m, data in bad:
        m.size = len(data)
    write_tar(tar, bad)
    with pytest.raises(
        DataError, match=r"behav.npy of sample 'sample00000000' is not a readable .npy array"
    ) as info:
        read_behav_tar(tar)
    assert "truncated" not in str(info.value)
    # a behav.npy of the wrong shape
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 17)))
    wrong = [(m, buf.getvalue() if i == behav[2] else data) for i, (m, data) in enumerate(members)]
    for m, data in wrong:
        m.size = len(data)
    write_tar(tar, wrong)
    with pytest.raises(DataError, match=r"has shape \(2, 17\), expected \(1, 17\)"):
        read_behav_tar(tar)
    # not a tar at all
    tar.write_bytes(b"\x01" * 3000)
    with pytest.raises(DataError, match="unreadable or truncated tar"):
        read_behav_tar(tar)
