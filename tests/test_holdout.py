"""Held-out training images (data.holdout_images): drawn reproducibly at test SNR, left out of every training
path, and decoded on request for choosing sampler settings without the test set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from decoder_fixtures import make_decoder_data, one_thread, tiny_config
from neuraldiffuser.data import VoxelScaler, open_dataset
from neuraldiffuser.data.layout import SubjectArrays, write_generic
from neuraldiffuser.data.splits import holdout_set, training_rows
from neuraldiffuser.errors import ConfigError, DataError
from neuraldiffuser.targets.store import TargetStore
from neuraldiffuser.training.decode import decode_betas, decode_holdout
from neuraldiffuser.training.runner import train_decoders


@pytest.fixture
def repeated(tmp_path):
    """One subject: training images 10…19 shown 1, 2, 3, 3, 3, 1, 3, 2, 3, 4 times; test images
    0, 1 three times."""
    counts = [1, 2, 3, 3, 3, 1, 3, 2, 3, 4]
    image = np.concatenate([np.repeat(np.arange(10, 20), counts), np.repeat([0, 1], 3)])
    split = np.array(["train"] * sum(counts) + ["test"] * 6)
    order = np.random.default_rng(1).permutation(len(image))
    image, split = image[order], split[order]
    betas = np.arange(len(image), dtype=np.float32)[:, None] * np.ones(
        (1, 5), np.float32
    )  # row r holds the value r
    arrays = {"subj01": SubjectArrays(betas, image, np.ones(len(image), dtype=np.int64), split)}
    root = write_generic(
        tmp_path / "ds", np.zeros((20, 4, 4, 3), np.uint8), {i: ["x"] for i in range(20)}, arrays
    )
    return open_dataset(root).subject("subj01"), image, split


def test_holdout_set_draws_images_seen_often_enough_with_their_first_trials(repeated):
    subj, image, split = repeated
    held = subj.holdout_set(4, seed=0, repeats=3)
    often = {12, 13, 14, 16, 18, 19}  # shown at least 3 times
    assert len(held) == 4 and set(held.images.tolist()) <= often and list(held.images) == sorted(held.images)
    assert held.rows.shape == (4, 3) and not held.padded.any()
    for im, rows in zip(held.images, held.rows, strict=True):
        trials = np.flatnonzero((image == im) & (split == "train"))  # rows of that image, ascending
        assert rows.tolist() == trials[:3].tolist()
    np.testing.assert_allclose(
        subj.test_betas(held)[:, 0], held.rows.mean(1), rtol=1e-6
    )  # betas row r holds r
    assert subj.holdout_set(4, seed=0, repeats=3).images.tolist() == held.images.tolist()  # reproducible
    assert (
        len({tuple(subj.holdout_set(4, seed=s, repeats=3).images) for s in range(8)}) > 1
    )  # the seed matters
    with pytest.raises(DataError, match="only 6 training images were shown 3"):
        subj.holdout_set(7, seed=0, repeats=3)


def test_training_rows_leave_out_the_held_out_images_of_the_target_only(repeated):
    subj, image, _ = repeated
    data = tiny_config(subj.source, data={"subject": "subj01", "holdout_images": 2, "test_repeats": 3}).data
    held = holdout_set(subj, data, seed=5)
    rows = training_rows(subj, data, seed=5)
    assert not np.isin(subj.image_of_rows(rows), held.images).any()
    assert len(rows) == len(subj.train_rows()) - int(np.isin(image, held.images).sum())
    other = data.model_copy(
        update={"subject": "subj02"}
    )  # subj01 is then a pretraining subject: all its trials
    assert holdout_set(subj, other, 5) is None and len(training_rows(subj, other, 5)) == len(
        subj.train_rows()
    )


@pytest.fixture(scope="module")
def held_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("holdout")
    ds, targets, _ = make_decoder_data(root)
    cfg = tiny_config(
        ds, data={"holdout_images": 8, "test_repeats": 1}
    )  # the fixture shows each training image once
    with one_thread():
        train_decoders(cfg, root / "run", targets)
    return cfg, root / "run", ds, targets


def test_training_never_sees_the_held_out_images(held_run):
    cfg, run_dir, ds, targets = held_run
    subj = open_dataset(ds).subject("subj01")
    held = holdout_set(subj, cfg.data, cfg.seed)
    kept = subj.train_rows(exclude_images=held.images)
    assert json.loads((run_dir / "decoders" / "manifest.json").read_text())["holdout_images"] == 8
    assert json.loads((run_dir / "decoders" / "manifest.json").read_text())["train_images"] == 48 - 8
    scaler = VoxelScaler.load(run_dir / "decoders" / "scaler.safetensors")
    np.testing.assert_allclose(
        scaler.mean, subj.read(kept).mean(0), rtol=1e-5
    )  # not the mean over every training row
    assert not np.allclose(scaler.mean, subj.read(subj.train_rows()).mean(0), rtol=1e-5)
    stats = load_file(str(run_dir / "decoders" / "z_stats.safetensors"))
    np.testing.assert_allclose(
        stats["mean"],
        TargetStore(targets).get_images("z", np.unique(subj.image_of_rows(kept))).mean(0),
        atol=1e-6,
    )


def test_decode_holdout_writes_the_held_out_images_like_any_trials(held_run, tmp_path):
    from neuraldiffuser.cli.main import main
    from neuraldiffuser.config import save_config

    cfg, run_dir, ds, _ = held_run
    save_config(cfg, run_dir)
    assert main(["decode", str(run_dir), "--holdout", "--ridge"]) == 0
    store = TargetStore(run_dir / "decoded_holdout.hdf5")
    subj = open_dataset(ds).subject("subj01")
    held = holdout_set(subj, cfg.data, cfg.seed)
    assert store.image.tolist() == held.images.tolist() and store.attrs["split"] == "holdout"
    assert TargetStore(run_dir / "decoded_holdout_ridge.hdf5").attrs["method"] == "ridge"
    same = TargetStore(
        decode_betas(cfg, run_dir, subj.read(held.rows[:, 0]), held.images, tmp_path / "same.hdf5")
    )
    np.testing.assert_allclose(store.get("c", np.arange(8)), same.get("c", np.arange(8)), atol=1e-6)
    with pytest.raises(ConfigError, match="held out 8 images; the config says data.holdout_images = 0"):
        decode_holdout(
            cfg.model_copy(update={"data": cfg.data.model_copy(update={"holdout_images": 0})}),
            run_dir,
            tmp_path / "x.hdf5",
        )


def test_decode_settings_blend_the_neural_and_ridge_z(held_run, tmp_path):
    """decode.z_ridge_weight w: z = (1 − w) · neural z + w · ridge z, one decoded file per decode setting."""
    from neuraldiffuser.sampling.validate import decode_holdout_settings, decode_setting

    cfg, run_dir, _, _ = held_run
    grid = [
        {"z_match": False, "z_ridge_weight": w, "strength": s, "kappa": 0.0, "eta": 0.0}
        for w in (0.0, 0.5, 1.0)
        for s in (0.1, 0.2)
    ]
    files = decode_holdout_settings(cfg, run_dir, tmp_path, grid)
    assert len(files) == 3 and all(decode_setting(p) in files for p in grid)
    z = {dict(k)["z_ridge_weight"]: TargetStore(f).get("z", np.arange(8)) for k, f in files.items()}
    plain = cfg.model_copy(deep=True)
    plain.decode.z_match = False
    ridge = TargetStore(decode_holdout(plain, run_dir, tmp_path / "ridge.hdf5", method="ridge"))
    np.testing.assert_allclose(z[1.0], ridge.get("z", np.arange(8)), atol=1e-5)
    np.testing.assert_allclose(z[0.5], (z[0.0] + z[1.0]) / 2, atol=1e-5)
    assert np.abs(z[0.0] - z[1.0]).mean() > 1e-3  # the two decoders differ, so the blend is tested
    assert TargetStore(files[decode_setting(grid[2])]).attrs["z_ridge_weight"] == 0.5


def test_z_ridge_weight_needs_the_runs_ridge(held_run, tmp_path):
    import shutil

    cfg, run_dir, ds, _ = held_run
    bare = tmp_path / "run"
    shutil.copytree(run_dir, bare)
    shutil.rmtree(bare / "ridge")
    blend = cfg.model_copy(deep=True)
    blend.decode.z_ridge_weight = 0.5
    with pytest.raises(ConfigError, match="decode.z_ridge_weight is 0.5 but the run has no ridge baseline"):
        decode_holdout(blend, bare, tmp_path / "x.hdf5")
    blend.decode.z_ridge_weight = 0.0  # without a blend the ridge is not needed
    assert decode_holdout(blend, bare, tmp_path / "y.hdf5").is_file()
