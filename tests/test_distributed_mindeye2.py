"""On NSD's MindEye2 layout, two CPU processes (gloo, torchrun) reconstruct what one process does (training:
test_train_distributed)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from neuraldiffuser.config import load_config, save_config
from neuraldiffuser.targets.store import write_store
from test_reconstruct import SAMPLER, files_of, random_targets
from test_train_resume import ENV

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_reconstruct_two_processes_match_one(tmp_path, tiny_stack, mindeye2_dir):
    decoded = write_store(
        tmp_path / "decoded.hdf5", np.array([9, 7, 8]), random_targets([9, 7, 8]), attrs={"subject": "subj01"}
    )
    config = load_config(
        overrides={
            "zoo": {"path": str(tiny_stack)},
            "data": {"path": str(mindeye2_dir)},
            "sampler": {**SAMPLER, "repeats": 1, "steps": 4},
        }
    )
    cfg_path = save_config(config, tmp_path, "cfg.yaml")
    cmd = [
        "-m",
        "neuraldiffuser.cli.main",
        "reconstruct",
        str(decoded),
        "--limit",
        "2",
        "--config",
        str(cfg_path),
        "--out",
    ]
    one = subprocess.Popen(
        [sys.executable, *cmd, str(tmp_path / "one")],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    two = subprocess.run([*TORCHRUN, *cmd, str(tmp_path / "two")], env=ENV, capture_output=True, text=True)
    out, _ = one.communicate(timeout=300)
    assert one.returncode == 0, out
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    setting = "neuraldiffuser/kappa=100_eta=0.5"
    a, b = files_of(tmp_path / "one" / setting), files_of(tmp_path / "two" / setting)
    assert len(a) == 4 and a == b  # 2 images × (1 repeat + strip), byte for byte
    manifest = json.loads((tmp_path / "two" / setting / "manifest.json").read_text())
    assert manifest["images"] == [9, 7] and manifest["complete"]
