"""A launch that asked for several processes but runs one is named on the console and in the run's summary."""

from __future__ import annotations

import json
import subprocess
import sys

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.config import save_config
from neuraldiffuser.utils.launch import launch_warning, parse_num_processes
from test_train_resume import ENV, train_cmd


def test_parse_the_accelerate_command_line(monkeypatch):
    assert (
        parse_num_processes(
            ["/venv/bin/python", "/venv/bin/accelerate", "launch", "--num_processes", "2", "-m", "x"]
        )
        == 2
    )
    assert (
        parse_num_processes(["python", "-m", "accelerate.commands.launch", "--num-processes=4", "train.py"])
        == 4
    )
    assert parse_num_processes(["python", "/venv/bin/accelerate", "launch", "-m", "x"]) is None
    assert parse_num_processes(["python", "train.py", "--num_processes", "2"]) is None  # not a launcher
    monkeypatch.setenv("NEURALDIFFUSER_EXPECT_PROCESSES", "3")
    assert "asked for 3 processes (NEURALDIFFUSER_EXPECT_PROCESSES) but 1 is running" in launch_warning(1)
    assert launch_warning(3) is None


def test_accelerate_launch_without_multi_gpu_is_reported(tmp_path):
    ds, targets, _ = make_decoder_data(tmp_path, subjects=(("subj01", 30), ("subj02", 36)))
    cfg = tiny_config(
        ds,
        decoder={"targets": ["c"]},
        train={"pretrain_epochs": 1, "finetune_epochs": 1, "ridge": False, "tensorboard": False},
    )
    cfg_path = save_config(cfg, tmp_path, "cfg.yaml")
    env = {
        k: v
        for k, v in ENV.items()
        if k not in ("NEURALDIFFUSER_EXPECT_PROCESSES", "ACCELERATE_NUM_PROCESSES")
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *train_cmd(ds, targets, tmp_path / "run", cfg_path)[1:],
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["processes"] == 1
    assert summary["launch_warning"].startswith(
        "the launch asked for 2 processes (accelerate launch --num_processes) but 1 is running"
    )
    assert "warning:" in done.stderr and "--multi_gpu" in done.stderr
