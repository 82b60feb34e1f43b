"""`zoo train --init-from`: every part of a trained stack is fine-tuned on the training stimuli only,
within the budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuraldiffuser.cli.main import main
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.data.importer import import_dataset
from neuraldiffuser.zoo.loader import Components
from neuraldiffuser.zoo.train.adapt import adapt_zoo, training_stimuli

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def digit_set(tmp_path):
    """20 greyscale 12 × 12 stimuli labelled 0..4, one subject, images 16..19 are test."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 12, 12), dtype=np.uint8)
    betas = rng.standard_normal((20, 8)).astype(np.float32)
    return import_dataset(
        tmp_path / "ds",
        images,
        betas,
        test=[16, 17, 18, 19],
        labels=np.arange(20) % 5,
        caption_template="digit {label}",
    )


def moved(a, b) -> float:
    """Total absolute change of the weights (one small step at warm-up lr moves some of them
    past fp16 rounding)."""
    return float(
        sum(
            (p.detach().float() - q.detach().float()).abs().sum()
            for p, q in zip(a.parameters(), b.parameters(), strict=True)
        )
    )


def test_training_stimuli_leave_test_images_out(digit_set):
    data, info = training_stimuli(digit_set, 16)
    assert len(data) == 16 and info["test_images_left_out"] == 4 and data.images.shape == (16, 16, 16, 3)
    assert (
        info["stimulus_size"] == [12, 12] and info["stimulus_mode"] == "L" and data.captions[3] == ["digit 3"]
    )


def test_every_part_changes_and_the_budget_holds(digit_set, tiny_stack, tmp_path):
    before = Components(ZooConfig(path=str(tiny_stack)))
    log = adapt_zoo(digit_set, tmp_path / "zoo", str(tiny_stack), minutes=0.05, seed=0)
    after = Components(ZooConfig(path=str(tmp_path / "zoo")))
    for part in ("vae", "unet", "text_encoder"):
        assert moved(getattr(before, part), getattr(after, part)) > 0, part
    assert all(log["parts"][p]["steps"] >= 1 for p in ("autoencoder", "clip", "unet"))
    assert (
        sum(log["parts"][p]["seconds"] for p in log["parts"]) < 0.05 * 60 + 15
    )  # each part stops after its share (+ one step)
    assert (
        log["quality_line"].startswith("quality (training stimuli): autoencoder SSIM")
        and "CLIP caption top-1" in log["quality_line"]
    )
    assert json.loads((tmp_path / "zoo" / "train_log.json").read_text())["adapted"]["data"]["n_images"] == 16
    assert (tmp_path / "zoo" / "clip" / "config.json").is_file() and (tmp_path / "zoo" / "tokenizer").is_dir()


def test_one_caption_keeps_clip_and_cli_prints_quality(tmp_path, tiny_stack, capsys):
    images = np.random.default_rng(1).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    root = import_dataset(tmp_path / "stim", images)  # a stimuli-only set with the default caption
    assert (
        main(
            [
                "zoo",
                "train",
                "--images",
                str(root),
                "--out",
                str(tmp_path / "zoo"),
                "--init-from",
                str(tiny_stack),
                "--minutes",
                "0.03",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "adapted" in out and "quality (training stimuli)" in out
    log = json.loads((tmp_path / "zoo" / "train_log.json").read_text())["adapted"]
    assert log["parts"]["clip"]["steps"] == 0 and "same caption" in log["parts"]["clip"]["skipped"]
    assert (
        main(
            [
                "zoo",
                "train",
                "--images",
                str(root),
                "--out",
                str(tmp_path / "zoo"),
                "--init-from",
                str(tiny_stack),
            ]
        )
        == 2
    )  # not empty
