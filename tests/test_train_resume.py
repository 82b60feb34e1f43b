"""A training run killed hard (SIGKILL) and resumed ends with weights bitwise equal to an
uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.config import save_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NEURALDIFFUSER_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}


def train_cmd(ds, targets, out, cfg, *extra):
    return [
        sys.executable,
        "-m",
        "neuraldiffuser.cli.main",
        "train",
        str(ds),
        str(targets),
        "--out",
        str(out),
        "--config",
        str(cfg),
        *extra,
    ]


def weights(folder: Path) -> dict:
    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
    ds, targets, _ = make_decoder_data(tmp_path)
    # multi-head model (c, g, z heads: every loss), dropout on, BiMixCo then SoftCLIP; 64 + 12 steps
    cfg = tiny_config(
        ds,
        decoder={"layout": "multi_head"},
        train={
            "pretrain_epochs": 8,
            "finetune_epochs": 3,
            "checkpoint_every": 10,
            "ridge": False,
            "tensorboard": True,
        },
    )
    cfg_path = save_config(cfg, tmp_path, "cfg.yaml")
    full = subprocess.Popen(
        train_cmd(ds, targets, tmp_path / "full", cfg_path),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    killed = subprocess.Popen(
        train_cmd(ds, targets, tmp_path / "killed", cfg_path),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpts = tmp_path / "killed" / "pretrain" / "all" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "step-00000020").is_dir():
        assert killed.poll() is None and time.time() < deadline, "the run ended before its second checkpoint"
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert not (tmp_path / "killed" / "pretrain" / "all" / "model").exists()
    resumed = subprocess.run(
        train_cmd(ds, targets, tmp_path / "killed", cfg_path, "--resume"),
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out, _ = full.communicate(timeout=240)
    assert full.returncode == 0, out
    import json

    info = json.loads((tmp_path / "killed" / "pretrain" / "all" / "model" / "training.json").read_text())
    assert 20 <= info["resumed_from"] < 64 and info["steps"] == 64
    for sub in ("pretrain/all/model", "decoders/all"):
        a, b = weights(tmp_path / "full" / sub), weights(tmp_path / "killed" / sub)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and bool((a[k] == b[k]).all()), f"{sub}: {k} differs"
    assert (tmp_path / "full" / "logs" / "train").is_dir()  # tensorboard events


def test_resume_refuses_changed_settings_and_unresumed_reuse(tmp_path):
    from neuraldiffuser.cli.main import main

    ds, targets, _ = make_decoder_data(tmp_path)
    cfg = tiny_config(
        ds,
        decoder={"layout": "multi_head", "targets": ["c"]},
        train={"pretrain_epochs": 1, "finetune_epochs": 1, "ridge": False},
    )
    cfg_path = save_config(cfg, tmp_path, "cfg.yaml")
    base = ["train", str(ds), str(targets), "--out", str(tmp_path / "run"), "--config", str(cfg_path)]
    assert main(base) == 0
    assert main(base) == 2  # not empty, no --resume
    assert main([*base, "--resume"]) == 0  # everything is done: nothing to train, same result
    assert main([*base, "--resume", "--set", "train.lr=0.5"]) == 2
