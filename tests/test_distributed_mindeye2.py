"""On NSD's MindEye2 layout, two CPU processes (gloo, torchrun) train and reconstruct what one process does."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.config import load_config, save_config
from neuraldiffuser.data import open_dataset
from neuraldiffuser.targets.store import write_store
from test_reconstruct import SAMPLER, files_of, random_targets
from test_train_resume import ENV, train_cmd, weights

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_train_two_processes_match_one(tmp_path):
    ds, targets, _ = make_decoder_data(tmp_path, subjects=(("subj01", 30), ("subj02", 36)), layout="mindeye2")
    no_dropout = {"layout": "multi_head", "dropout": 0.0, "z_dropout": 0.0, "z_adapter_dropout": 0.0}
    cfg = tiny_config(ds, decoder=no_dropout, train={"pretrain_epochs": 1, "finetune_epochs": 2, "mixco_fraction": 0.5, "ridge": False, "checkpoint_every": 10})
    assert open_dataset(ds).layout == "mindeye2"
    cfg_path = save_config(cfg, tmp_path, "cfg.yaml")
    one = subprocess.Popen(train_cmd(ds, targets, tmp_path / "one", cfg_path), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    two = subprocess.run(TORCHRUN + train_cmd(ds, targets, tmp_path / "two", cfg_path)[1:], env=ENV, capture_output=True, text=True)
    out, _ = one.communicate(timeout=300)
    assert one.returncode == 0, out
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    info = json.loads((tmp_path / "two" / "decoders" / "all" / "training.json").read_text())
    assert info["processes"] == 2 and info["global_batch"] == 12
    for sub in ("pretrain/all/model", "decoders/all"):
        a, b = weights(tmp_path / "one" / sub), weights(tmp_path / "two" / sub)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=f"{sub}: {k}")
    pre, fin = weights(tmp_path / "one" / "pretrain/all/model"), weights(tmp_path / "one" / "decoders/all")
    assert not torch.allclose(pre["backbone.blocks.0.1.weight"], fin["backbone.blocks.0.1.weight"])


def test_reconstruct_two_processes_match_one(tmp_path, tiny_stack, mindeye2_dir):
    decoded = write_store(tmp_path / "decoded.hdf5", np.array([9, 7, 8]), random_targets([9, 7, 8]), attrs={"subject": "subj01"})
    config = load_config(overrides={"zoo": {"path": str(tiny_stack)}, "data": {"path": str(mindeye2_dir)}, "sampler": {**SAMPLER, "repeats": 1, "steps": 4}})
    cfg_path = save_config(config, tmp_path, "cfg.yaml")
    cmd = ["-m", "neuraldiffuser.cli.main", "reconstruct", str(decoded), "--limit", "2", "--config", str(cfg_path), "--out"]
    one = subprocess.Popen([sys.executable, *cmd, str(tmp_path / "one")], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    two = subprocess.run([*TORCHRUN, *cmd, str(tmp_path / "two")], env=ENV, capture_output=True, text=True)
    out, _ = one.communicate(timeout=300)
    assert one.returncode == 0, out
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    setting = "neuraldiffuser/kappa=100_eta=0.5"
    a, b = files_of(tmp_path / "one" / setting), files_of(tmp_path / "two" / setting)
    assert len(a) == 4 and a == b  # 2 images × (1 repeat + strip), byte for byte
    manifest = json.loads((tmp_path / "two" / setting / "manifest.json").read_text())
    assert manifest["images"] == [9, 7] and manifest["complete"]
