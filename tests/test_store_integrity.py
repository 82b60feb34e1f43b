"""Target stores never pass as complete when they are not: write failures (disk full) surface as one clear
error with the unwritten rows left not done, space is checked first, incomplete or foreign
stores are refused."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from collections import namedtuple

import h5py
import numpy as np
import pytest

from neuraldiffuser.cli.main import main
from neuraldiffuser.errors import DataError, RunError
from neuraldiffuser.targets.store import TargetStore, create_store, write_rows

EXTRACT = ["--set", "extract.batch_size=3"]


def _extract(dataset, out, stack, *extra):
    return main(["extract", str(dataset), "--out", str(out), "--set", f"zoo.path={stack}", *EXTRACT, *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_stack):
    """Targets of conftest's generic dataset from an extraction that was never interrupted."""
    from conftest import make_arrays
    from neuraldiffuser.data.layout import write_generic

    root = tmp_path_factory.mktemp("reference")
    assert _extract(write_generic(root / "generic", *make_arrays()), root / "ref.hdf5", tiny_stack) == 0
    with TargetStore(root / "ref.hdf5") as st:
        return {key: st.get(key, np.arange(10)) for key in ("z", "c", "g")}


def test_disk_full_mid_extraction_is_one_error_and_rows_stay_not_done(
    tmp_path, tiny_stack, generic_dir, reference, monkeypatch, capsys
):
    real_setitem, calls = h5py.Dataset.__setitem__, {"c": 0}

    def full_on_third_c(ds, key, value):
        if ds.name == "/c":
            calls["c"] += 1
            if calls["c"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_setitem(ds, key, value)

    out = tmp_path / "t.hdf5"
    monkeypatch.setattr(h5py.Dataset, "__setitem__", full_on_third_c)
    assert _extract(generic_dir, out, tiny_stack) == 1
    err = capsys.readouterr().err
    assert (
        "disk full while writing" in err
        and str(out) in err
        and "3 rows of this write stay marked not done" in err
    )
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real_setitem)
    with TargetStore(
        out, complete=False
    ) as st:  # z of the third batch was written, its c was not: none of it counts
        assert st.done.tolist() == [True] * 6 + [False] * 4
    with pytest.raises(
        DataError,
        match=r"incomplete store: 4 of 10 rows .*`neuraldiffuser extract "
        r".*generic --out .*t\.hdf5 --config .*t\.config\.yaml`",
    ):
        TargetStore(out)
    # the command the error names completes exactly what is missing, equal to an extraction that never failed
    assert (
        main(["extract", str(generic_dir), "--out", str(out), "--config", str(tmp_path / "t.config.yaml")])
        == 0
    )
    with TargetStore(out) as st:
        for key in (
            "z",
            "c",
            "g",
        ):  # same batches in both runs: the same numbers up to the float rounding of the
            # killed run's one thread against the reference's default thread count (1.2e-7 measured; a wrong
            # or zero row is off by ~0.1)
            np.testing.assert_allclose(st.get(key, np.arange(10)), reference[key], rtol=0, atol=1e-5)


def test_a_full_file_system_inside_hdf5_raises_instead_of_crashing(tmp_path):
    """The real HDF5 write path: a file-size limit makes write(2) fail (EFBIG), as a full
    disk does (ENOSPC)."""
    script = textwrap.dedent(f"""
        import resource, signal, numpy as np
        from neuraldiffuser.errors import RunError
        from neuraldiffuser.targets.store import TargetStore, create_store, write_rows
        import h5py
        path = {str(tmp_path / "s.hdf5")!r}
        create_store(path, np.arange(40), {{"z": (4, 64, 64)}})  # 16 rows (1 MiB) per chunk
        with h5py.File(path) as f:
            limit = f["z"].id.get_chunk_info(2).byte_offset  # the chunk of rows 32-39 lies past the limit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            for i in range(0, 40, 8):
                write_rows(path, np.arange(i, i + 8), {{"z": np.ones((8, 4, 64, 64))}})
        except RunError as exc:
            print("ERROR", exc)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        st = TargetStore(path, complete=False)
        print("DONE", "".join(str(int(d)) for d in st.done))
        print("ZEROS", "".join(str(int(st.get("z", [i]).max() == 0)) for i in range(40)))
    """)
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert run.returncode == 0, run.stderr
    assert "Exception ignored" not in run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert "disk full while writing" in lines["ERROR"]
    done, zeros = lines["DONE"], lines["ZEROS"]
    assert (
        done == "1" * 32 + "0" * 8
    )  # rows written before the failure are kept, the failed ones are not done
    assert zeros == "0" * 32 + "1" * 8


def test_free_space_is_checked_before_extraction(tmp_path, tiny_stack, generic_dir, monkeypatch, capsys):
    # 10 images × (z 4·8·8 + c 77·16 float32, g 6·17·16 float16 values + 9 bytes of index and
    # flag) + 1 MiB margin
    need = 10 * (4 * 8 * 8 * 4 + 77 * 16 * 4 + 6 * 17 * 16 * 2 + 9) + (1 << 20)
    usage = namedtuple("usage", "total used free")
    out = tmp_path / "t.hdf5"
    monkeypatch.setattr(
        "neuraldiffuser.utils.storage.shutil.disk_usage", lambda p: usage(10**12, 10**12 - need + 1, need - 1)
    )
    assert _extract(generic_dir, out, tiny_stack) == 1
    err = capsys.readouterr().err
    assert (
        f"{out}: not enough free space for the target store: needs {need} B, {need - 1} B free" in err
        and "--out" in err
    )
    assert not out.exists() and not list(tmp_path.glob(".t.hdf5*"))  # nothing left that could pass as a store
    monkeypatch.setattr(
        "neuraldiffuser.utils.storage.shutil.disk_usage", lambda p: usage(10**12, 10**12 - need, need)
    )
    assert _extract(generic_dir, out, tiny_stack) == 0
    assert TargetStore(out).done.all()


def test_store_bytes_match_the_file(tmp_path):
    from neuraldiffuser.targets.store import store_bytes
    from neuraldiffuser.utils.storage import allocated_bytes

    shapes = {"z": (4, 16, 16), "g": (6, 17, 16)}
    create_store(tmp_path / "s.hdf5", np.arange(200), shapes, {"g": "float16"})
    est, size, held = (
        store_bytes(200, shapes, {"g": "float16"}),
        os.path.getsize(tmp_path / "s.hdf5"),
        allocated_bytes(tmp_path / "s.hdf5"),
    )
    assert est <= size <= est + (1 << 16)  # data plus HDF5 metadata
    if hasattr(os, "posix_fallocate"):
        assert held >= size  # reserved at creation: later row writes cannot run out of space


def _partial_store(path, n=10, written=6, **attrs):
    create_store(path, np.arange(n), {"c": (2, 3)}, attrs=attrs)
    if written:
        write_rows(path, np.arange(written), {"c": np.ones((written, 2, 3))})
    return path


def test_incomplete_or_empty_stores_are_refused(tmp_path):
    path = _partial_store(tmp_path / "t.hdf5", dataset="/data/ds", zoo_path="zoo")
    with pytest.raises(
        DataError,
        match=r"incomplete store: 4 of 10 rows were never "
        r"written.*`neuraldiffuser extract /data/ds --out .*t\.hdf5`",
    ):
        TargetStore(path)
    assert TargetStore(path, complete=False).done.sum() == 6
    with pytest.raises(DataError, match="incomplete store: 10 of 10 rows"):
        TargetStore(_partial_store(tmp_path / "none.hdf5", written=0))
    with pytest.raises(DataError, match="holds no images"):
        TargetStore(_partial_store(tmp_path / "empty.hdf5", n=0, written=0))


def test_bad_extract_batch_size_leaves_no_store(tmp_path, tiny_stack, generic_dir):
    from neuraldiffuser.config import load_config
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.errors import ConfigError
    from neuraldiffuser.targets.extract import extract_targets

    cfg = load_config(overrides={"zoo": {"path": str(tiny_stack)}})
    for bad in (0, -4):
        cfg.extract = cfg.extract.model_copy(
            update={"batch_size": bad}
        )  # past the schema, as a Python caller can
        with pytest.raises(ConfigError, match="extract.batch_size must be at least 1"):
            extract_targets(cfg, open_dataset(generic_dir), tmp_path / "t.hdf5")
        assert not (tmp_path / "t.hdf5").exists()


def _file_size_limit(limit: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_disk_full_during_simulate_is_one_error_and_nothing_looks_complete(tmp_path):
    """A file-size limit past the images (1.7 MB) but short of the first subject's betas (3.1 MB)."""
    out = tmp_path / "sim"
    cmd = [
        sys.executable,
        "-m",
        "neuraldiffuser.cli.main",
        "simulate",
        "--out",
        str(out),
        "--subjects",
        "2",
        "--n-images",
        "20",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "OMP_NUM_THREADS": "1",
        "NEURALDIFFUSER_PROGRESS": "0",
    }
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=env, preexec_fn=_file_size_limit(2_500_000)
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert (
        run.stderr.strip()
        == f"error: {out / 'subjects' / 'subj01' / 'betas.hdf5'}: disk full while writing — free "
        "space on that disk (or write elsewhere with --out) and run the same command again"
    )
    assert (out / "images.hdf5").is_file() and not (out / "subjects" / "subj01" / "betas.hdf5").exists()
    assert not (out / "dataset.json").exists() and not list(
        out.rglob(".*.hdf5")
    )  # not a dataset; no temporaries


def test_extracting_another_dataset_onto_a_store_is_refused(tmp_path, tiny_stack, generic_dir, capsys):
    from conftest import make_arrays
    from neuraldiffuser.data.layout import write_generic

    other = write_generic(tmp_path / "other", *make_arrays(seed=1))  # same counts and shapes, other images
    out = tmp_path / "t.hdf5"
    assert _extract(generic_dir, out, tiny_stack, "--set", "extract.targets=[c]") == 0
    capsys.readouterr()
    assert _extract(other, out, tiny_stack, "--set", "extract.targets=[c]") == 2
    err = capsys.readouterr().err
    assert f"{out}: existing store was extracted from another dataset ({generic_dir}: 10 images 8x8 " in err
    assert f"this one is {other}: 10 images 8x8 " in err and "--overwrite" in err
    assert _extract(other, out, tiny_stack, "--set", "extract.targets=[c]", "--overwrite") == 0


def test_fingerprint_tells_datasets_apart_and_ignores_the_layout(tmp_path, generic_dir, mindeye2_dir):
    from conftest import make_arrays
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.data.fingerprint import dataset_fingerprint
    from neuraldiffuser.data.layout import write_generic

    a, b = dataset_fingerprint(open_dataset(generic_dir)), dataset_fingerprint(open_dataset(mindeye2_dir))
    assert a == b and a.startswith("10 images 8x8 ")
    images, captions, subjects = make_arrays()
    captions[3] = ["another caption"]
    assert (
        dataset_fingerprint(open_dataset(write_generic(tmp_path / "caps", images, captions, subjects))) != a
    )
    images[9, 0, 0, 0] ^= 1  # one pixel of the last image
    assert dataset_fingerprint(open_dataset(write_generic(tmp_path / "pix", images, *make_arrays()[1:]))) != a


def test_mindeye2_subject_without_betas_is_an_error_not_dropped(mindeye2_dir, capsys):
    (mindeye2_dir / "betas_all_subj02_fp32_renorm.hdf5").unlink()
    assert main(["inspect", str(mindeye2_dir), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no summary of the remaining subject that could pass for the dataset
    assert (
        f"{mindeye2_dir}: 1 subject(s) with trials in wds/ have no "
        "betas file: subj02 (missing betas_all_subj02_fp32_renorm.hdf5)" in captured.err
    )
    assert "move wds/subj02 out of the folder" in captured.err
    (mindeye2_dir / "wds" / "subj02").rename(
        mindeye2_dir / "subj02_wds"
    )  # what the message offers: use the others
    assert main(["inspect", str(mindeye2_dir), "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["subjects"]) == ["subj01"]


def test_extraction_refuses_to_store_non_finite_targets(
    tmp_path, tiny_stack, generic_dir, monkeypatch, capsys
):
    from neuraldiffuser.targets import extract as ex

    real = ex.encode_captions

    def nan_for_image_4(comp, captions):
        c = real(comp, captions)
        c[[i for i, caps in enumerate(captions) if caps[0].startswith("image 4 ")]] = float("nan")
        return c

    monkeypatch.setattr(ex, "encode_captions", nan_for_image_4)
    out = tmp_path / "t.hdf5"
    assert _extract(generic_dir, out, tiny_stack, "--set", "extract.targets=[c]") == 1
    assert (
        f"{out}: the computed 'c' is NaN/Inf for images [4]; that batch was not stored"
        in capsys.readouterr().err
    )
    with TargetStore(out, complete=False) as st:
        assert st.done.tolist() == [True] * 3 + [False] * 7


def test_write_errors_read_as_one_line():
    from neuraldiffuser.utils.storage import write_error

    hdf5 = RuntimeError(
        "Can't synchronously write data (file write failed: time = Mon Dec  7 07:37:39 "
        "2026\n, filename = 'x', errno = 5, error message = 'Input/output error', buf = 0x1)"
    )
    assert (
        write_error("/d/t.hdf5", hdf5).format()
        == "/d/t.hdf5: write failed (Input/output error) — check that the location "
        "is writable and the disk healthy, then run the same command again"
    )
    full = RuntimeError(
        "Unable to synchronously flush file (file write failed: time "
        "= x\n, errno = 28, error message = 'No space left on device')"
    )
    assert write_error("/d/t.hdf5", full).what == "disk full while writing"
    assert (
        write_error(
            "/d/m.safetensors",
            Exception(
                "Error while serializing: IoError(Os { code: 28, kind: "
                'StorageFull, message: "No space left on device" })'
            ),
        ).what
        == "disk full while writing"
    )
    assert write_error("/d/t.hdf5", OSError(errno.EDQUOT, "Disk quota exceeded")).exit_code == 1


def test_sigkill_between_a_batch_and_its_done_flags_then_rerun_is_exact(
    tmp_path, tiny_stack, generic_dir, reference
):
    """Killed after the third batch's data reached the file but before its flags: those rows are redone."""
    out = tmp_path / "t.hdf5"
    script = textwrap.dedent(f"""
        import os, signal, h5py
        from neuraldiffuser.cli.main import main
        real, calls = h5py.Dataset.__setitem__, {{"done": 0}}
        def kill_at_third_flags(ds, key, value):
            if ds.name == "/done":
                calls["done"] += 1
                if calls["done"] == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
            real(ds, key, value)
        h5py.Dataset.__setitem__ = kill_at_third_flags
        main(["extract", {str(generic_dir)!r}, "--out", {str(out)!r},
              "--set", "zoo.path={tiny_stack}", "--set", "extract.batch_size=3"])
    """)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "OMP_NUM_THREADS": "1",
        "NEURALDIFFUSER_PROGRESS": "0",
    }
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert killed.returncode == -9, killed.stderr
    with TargetStore(out, complete=False) as st:
        assert st.done.tolist() == [True] * 6 + [False] * 4
        assert (
            np.abs(st.get("c", [6, 7, 8])).max() > 0
        )  # the data of the killed batch is there, but not counted
    assert _extract(generic_dir, out, tiny_stack) == 0
    with TargetStore(out) as st:
        for key in (
            "z",
            "c",
            "g",
        ):  # same batches in both runs: the same numbers up to the float rounding of the
            # killed run's one thread against the reference's default thread count (1.2e-7 measured; a wrong
            # or zero row is off by ~0.1)
            np.testing.assert_allclose(st.get(key, np.arange(10)), reference[key], rtol=0, atol=1e-5)


def test_a_refused_resume_keeps_the_config_that_completes_the_store(tmp_path, tiny_stack, generic_dir):
    out = tmp_path / "t.hdf5"
    c_only = ["--set", "extract.targets=[c]"]
    assert _extract(generic_dir, out, tiny_stack, *c_only) == 0
    saved = (tmp_path / "t.config.yaml").read_text()
    assert (
        _extract(generic_dir, out, tiny_stack, *c_only, "--set", "extract.targets=[c, z]") == 2
    )  # refused: other targets
    assert (tmp_path / "t.config.yaml").read_text() == saved


def test_atomic_writes_refuse_a_folder_or_an_unwritable_place(tmp_path):
    from neuraldiffuser.utils.io import atomic_write_text

    (tmp_path / "folder").mkdir()
    with pytest.raises(RunError, match="folder: is a folder, not a file"):
        atomic_write_text(tmp_path / "folder", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=r"file/out\.json: cannot write here: part of the path is a file"):
        atomic_write_text(tmp_path / "file" / "out.json", "x")
    with pytest.raises(RunError, match=r"file/t\.hdf5: write failed \(Not a directory\)"):
        create_store(tmp_path / "file" / "t.hdf5", np.arange(3), {"c": (2, 3)})  # h5_writer, no temporary


def test_simulate_checks_free_space_first_with_an_estimate_near_the_truth(tmp_path, monkeypatch, capsys):
    from neuraldiffuser.config import load_config
    from neuraldiffuser.simulate.presets import resolve_preset
    from neuraldiffuser.simulate.run import estimated_bytes

    # measured on `simulate --subjects 2 --n-images 20 --layout both` (140 images, 2283 and 2512
    # voxels): 33.3 MB written
    preset = resolve_preset(load_config(overrides={"simulate": {"subjects": 2, "n_images": 20}}).simulate)
    assert 0.85 < estimated_bytes(preset, "both", 2) / 33_323_302 < 1.15
    assert estimated_bytes(preset, "both", 1) < estimated_bytes(preset, "both", 2) and estimated_bytes(
        preset, "generic", 2
    ) < estimated_bytes(preset, "both", 2)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        "neuraldiffuser.utils.storage.shutil.disk_usage", lambda p: usage(10**12, 10**12 - 10**6, 10**6)
    )
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--subjects", "2", "--n-images", "20"]) == 1
    assert (
        f"{out}: not enough free space for the simulated dataset (estimated): needs "
        in capsys.readouterr().err
    )
    assert not (out / "images.hdf5").exists() and not (out / "dataset.json").exists()
