"""One subject trains without extra settings; train.auto_scale fits the schedule to the data with
no trial dropped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from decoder_fixtures import make_decoder_data, one_thread, tiny_config
from neuraldiffuser.config import load_config
from neuraldiffuser.data import open_dataset
from neuraldiffuser.training.autoscale import AUTO_STEPS, adapt_to_data
from neuraldiffuser.training.runner import train_decoders


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One subject: 45 training images seen once, 12 test images seen 3 times."""
    root = tmp_path_factory.mktemp("single")
    ds, targets, _ = make_decoder_data(root, subjects=(("subj01", 30),), n_train=45)
    return ds, targets


def test_one_subject_fine_tunes_from_scratch_and_says_so(single, tmp_path, capsys):
    ds, targets = single
    cfg = tiny_config(ds, decoder={"targets": ["c"]}, train={"finetune_epochs": 1, "ridge": False})
    assert cfg.train.stages == ["pretrain", "finetune"]
    with one_thread():
        result = train_decoders(cfg, tmp_path / "run", targets)
    assert "only one subject (subj01)" in capsys.readouterr().err
    assert [r["stage"] for r in result["runs"]] == ["finetune"] and not (
        tmp_path / "run" / "pretrain"
    ).exists()


@pytest.mark.parametrize(
    "n_train, batch, expect_batch, expect_steps", [(45, 32, 32, 2), (45, 48, 45, 1), (20, 12, 12, 2)]
)
def test_auto_scale_draws_every_trial_each_epoch(tmp_path, n_train, batch, expect_batch, expect_steps):
    ds_dir, _, _ = make_decoder_data(tmp_path, subjects=(("subj01", 10),), n_train=n_train)
    cfg = tiny_config(
        ds_dir,
        train={"auto_scale": True, "batch_size": batch, "epoch_samples": 1536},
        data={"holdout_images": 0},
    )
    out = adapt_to_data(cfg, open_dataset(ds_dir), verbose=False)
    assert out.train.stages == ["finetune"]
    assert out.train.batch_size == expect_batch and out.train.epoch_samples == expect_batch * expect_steps
    assert out.train.epoch_samples >= n_train  # the loop's steps = epoch_samples // batch cover every trial
    assert out.train.finetune_epochs == int(np.clip(np.ceil(AUTO_STEPS / expect_steps), 12, 300))
    assert (
        adapt_to_data(out, open_dataset(ds_dir), verbose=False) == out
    )  # idempotent: --resume compares equal configs


def test_auto_scale_caps_repeats_and_holdout(tmp_path):
    ds_dir, _, _ = make_decoder_data(tmp_path, subjects=(("subj01", 10),), n_train=30)
    cfg = tiny_config(ds_dir, train={"auto_scale": True}, data={"holdout_images": 10, "test_repeats": 5})
    out = adapt_to_data(cfg, open_dataset(ds_dir), verbose=False)
    assert out.data.test_repeats == 3 and out.data.holdout_images == 0  # test shown 3×; no training image was
    cfg.data.test_repeats = 1
    out = adapt_to_data(cfg, open_dataset(ds_dir), verbose=False)
    assert out.data.test_repeats == 1 and out.data.holdout_images == 6  # a fifth of 30 images
    assert out.train.batch_size == 12 and out.train.epoch_samples == 24  # 24 trials left after holding out 6


def test_small_preset_trains_ridge_and_logs_the_schedule(single, tmp_path, capsys):
    ds, targets = single
    small = load_config("small")
    assert (
        small.train.auto_scale
        and small.train.ridge
        and small.decode.ridge
        and small.train.stages == ["finetune"]
    )
    cfg = tiny_config(
        ds,
        decoder={"targets": ["c"]},
        train={"auto_scale": True, "ridge": True, "batch_size": 32},
        data={"holdout_images": 4, "test_repeats": 1},
    )
    cfg = adapt_to_data(cfg, open_dataset(ds))
    cfg.train.finetune_epochs = 2  # keep the test short; the schedule itself is checked above
    with one_thread():
        result = train_decoders(cfg, tmp_path / "run", targets)
    assert "41 training trials: batch 32, 2 steps per epoch" in capsys.readouterr().err
    assert result["runs"][0]["steps_per_epoch"] == 2 and (tmp_path / "run" / "ridge").is_dir()
    manifest = json.loads((tmp_path / "run" / "decoders" / "manifest.json").read_text())
    assert manifest["holdout_images"] == 4 and manifest["train_images"] == 41
