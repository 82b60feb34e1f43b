"""Checkpoints: only the newest N stay while a stage trains, resume from them is exact, a finished stage keeps
only its final model, and a run that cannot fit on the disk is refused before it starts."""

from __future__ import annotations

import pytest
import torch

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.errors import NeuralDiffuserError
from neuraldiffuser.training import checkpoint, disk
from neuraldiffuser.training.loop import Trainer
from neuraldiffuser.training.runner import train_decoders
from test_train_resume import weights


class Killed(Exception):
    pass


def test_only_n_checkpoints_remain_and_resume_is_exact(tmp_path, monkeypatch):
    ds, targets, _ = make_decoder_data(tmp_path)
    cfg = tiny_config(
        ds,
        decoder={"targets": ["c"]},
        train={
            "stages": ["finetune"],
            "finetune_epochs": 3,
            "checkpoint_every": 2,
            "keep_checkpoints": 2,
            "ridge": False,
        },
    )
    full = train_decoders(cfg, tmp_path / "full", targets)
    assert full["runs"][0]["steps"] == 12  # 48 trials, batch 12: 4 steps per epoch
    stage = tmp_path / "full" / "finetune" / "c"
    assert not (stage / "checkpoints").exists()  # finished: the final model is all that stays
    assert {p.name for p in (stage / "model").iterdir()} == {
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "training.json",
    }

    step = Trainer._step

    def dies_at_step_9(self, i, batch):
        if i == 8:
            raise Killed
        return step(self, i, batch)

    monkeypatch.setattr(Trainer, "_step", dies_at_step_9)
    with pytest.raises(Killed):
        train_decoders(cfg, tmp_path / "killed", targets)
    ckpts = checkpoint.checkpoints(tmp_path / "killed" / "finetune" / "c" / "checkpoints")
    assert [p.name for p in ckpts] == ["step-00000006", "step-00000008"]  # 2, 4 pruned
    monkeypatch.setattr(Trainer, "_step", step)
    resumed = train_decoders(cfg, tmp_path / "killed", targets)
    assert resumed["runs"][0]["resumed_from"] == 8
    a, b = weights(stage / "model"), weights(tmp_path / "killed" / "finetune" / "c" / "model")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    assert not (tmp_path / "killed" / "finetune" / "c" / "checkpoints").exists()


def test_disk_estimate_and_refusal(tmp_path, monkeypatch):
    # two stages of a 1000-parameter model (decoders/ links the last, no copy);
    # 2 checkpoints + the one being written
    need = disk.run_disk_bytes([(1000, False), (1000, True)], keep=2, keep_finished=False)
    assert need == 1000 * 4 * 2 + 3 * 1000 * 12 + disk.SLACK_BYTES
    kept = disk.run_disk_bytes([(1000, False), (1000, True)], keep=2, keep_finished=True)
    assert kept == 1000 * 4 * 2 + 2 * 2 * 1000 * 12 + disk.SLACK_BYTES
    # a stage shorter than train.checkpoint_every writes no checkpoint (the last only when kept)
    assert disk.checkpoints_written(12, 1000, False) == 0 and disk.checkpoints_written(12, 1000, True) == 1
    assert (
        disk.checkpoints_written(2000, 1000, False) == 1 and disk.checkpoints_written(2001, 1000, False) == 2
    )
    short = disk.run_disk_bytes([(1000, False, 0), (1000, True, 1)], keep=2, keep_finished=False)
    assert short == 1000 * 4 * 2 + 1 * 1000 * 12 + disk.SLACK_BYTES
    assert disk.count_params(lambda: torch.nn.Linear(10, 3)) == 33

    ds, targets, _ = make_decoder_data(tmp_path)
    cfg = tiny_config(ds, decoder={"targets": ["c"]}, train={"ridge": False})

    class Usage:
        free = 10 * 2**20

    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(
        NeuralDiffuserError, match=r"not enough free disk: the run needs about 0\.1 GB .* 0\.0 GB are free"
    ) as info:
        train_decoders(cfg, tmp_path / "run", targets)
    assert "lower train.keep_checkpoints" in str(info.value) and str(tmp_path / "run") in str(info.value)
    assert not (tmp_path / "run" / "pretrain").exists()  # refused before any stage started
