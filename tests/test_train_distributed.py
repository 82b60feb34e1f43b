"""Two CPU processes (gloo, launched with torchrun) train the same weights as one process with the
same global batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from decoder_fixtures import make_decoder_data, tiny_config
from neuraldiffuser.config import save_config
from neuraldiffuser.data import open_dataset
from test_train_resume import ENV, train_cmd, weights


@pytest.mark.parametrize("layout", ["generic", "mindeye2"])
def test_two_processes_match_one(tmp_path, layout):
    """Also on NSD's MindEye2 layout, whose shards every process reads whole (issue 16)."""
    subjects = (
        {} if layout == "generic" else {"subjects": (("subj01", 30), ("subj02", 36)), "layout": "mindeye2"}
    )
    ds, targets, _ = make_decoder_data(tmp_path, **subjects)
    assert open_dataset(ds).layout == layout
    no_dropout = {"layout": "multi_head", "dropout": 0.0, "z_dropout": 0.0, "z_adapter_dropout": 0.0}
    cfg = tiny_config(
        ds,
        decoder=no_dropout,
        train={
            "pretrain_epochs": 2,
            "finetune_epochs": 2,
            "mixco_fraction": 0.5,
            "ridge": False,
            "checkpoint_every": 10,
        },
    )
    cfg_path = save_config(cfg, tmp_path, "cfg.yaml")
    one = subprocess.Popen(
        train_cmd(ds, targets, tmp_path / "one", cfg_path),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = subprocess.run(
        torchrun + train_cmd(ds, targets, tmp_path / "two", cfg_path)[1:],
        env=ENV,
        capture_output=True,
        text=True,
    )
    out, _ = one.communicate(timeout=300)
    assert one.returncode == 0, out
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    info = json.loads((tmp_path / "two" / "decoders" / "all" / "training.json").read_text())
    assert info["processes"] == 2 and info["global_batch"] == 12
    for sub in ("pretrain/all/model", "decoders/all"):
        a, b = weights(tmp_path / "one" / sub), weights(tmp_path / "two" / sub)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4, msg=f"{sub}: {k}")
    # and training did change the weights (the comparison is not between two untouched models)
    pre, fin = weights(tmp_path / "one" / "pretrain/all/model"), weights(tmp_path / "one" / "decoders/all")
    assert not torch.allclose(pre["backbone.blocks.0.1.weight"], fin["backbone.blocks.0.1.weight"])
