"""Stage selection, checkpoints on disk, and the errors a user can act on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from decoder_fixtures import make_decoder_data, one_thread, tiny_config
from neuraldiffuser.errors import ConfigError, DataError
from neuraldiffuser.models.brain import BrainDecoder
from neuraldiffuser.targets.store import write_store
from neuraldiffuser.training import checkpoint
from neuraldiffuser.training.runner import train_decoders


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    ds, targets, _ = make_decoder_data(root)
    return root, ds, targets


def test_scratch_few_sessions_and_checkpoints(data, tmp_path):
    _, ds, targets = data
    cfg = tiny_config(
        ds,
        data={"sessions": 2},
        decoder={"targets": ["c"]},
        train={
            "stages": ["finetune"],
            "finetune_epochs": 3,
            "checkpoint_every": 2,
            "keep_checkpoints": 2,
            "keep_finished_checkpoints": True,
            "ridge": False,
        },
    )
    result = train_decoders(cfg, tmp_path / "run", targets)
    assert not (tmp_path / "run" / "pretrain").exists()
    (run,) = result["runs"]
    # subj01 has 48 training trials over 4 sessions: 24 in the first 2, batch 12 → 2 steps per epoch
    assert run["steps"] == 6 and run["steps_per_epoch"] == 2
    ckpts = checkpoint.checkpoints(tmp_path / "run" / "finetune" / "c" / "checkpoints")
    assert [p.name for p in ckpts] == ["step-00000004", "step-00000006"]  # pruned to the newest two
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["total_steps"] == 6
    assert {p.name for p in ckpts[-1].iterdir()} >= {
        "model.safetensors",
        "optimizer.bin",
        "scheduler.bin",
        "random_states_0.pkl",
    }
    (ckpts[0].parent / ".tmp-step-00000008").mkdir()  # an interrupted write is never picked up
    assert checkpoint.latest(ckpts[0].parent) == ckpts[-1]
    model = BrainDecoder.from_pretrained(tmp_path / "run" / "decoders" / "c")
    assert model.config.subjects == {"subj01": 30}
    manifest = json.loads((tmp_path / "run" / "decoders" / "manifest.json").read_text())
    assert manifest["sessions"] == 2 and manifest["train_images"] == 24
    # decoders/ links the stage's final model instead of holding a second copy of its weights
    final = tmp_path / "run" / "finetune" / "c" / "model"
    for f in final.iterdir():
        linked = tmp_path / "run" / "decoders" / "c" / f.name
        assert linked.stat().st_ino == f.stat().st_ino and f.stat().st_nlink == 2


def test_explicit_pretrain_subjects_and_tensorboard(data, tmp_path):
    _, ds, targets = data
    cfg = tiny_config(
        ds,
        data={"pretrain_subjects": ["subj03"]},
        decoder={"targets": ["z"]},
        train={
            "pretrain_epochs": 1,
            "finetune_epochs": 1,
            "ridge": False,
            "tensorboard": True,
            "log_every": 1,
        },
    )
    train_decoders(cfg, tmp_path / "run", targets)
    pre = BrainDecoder.from_pretrained(tmp_path / "run" / "pretrain" / "z" / "model")
    assert pre.config.subjects == {"subj03": 42}
    events = list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_errors(data, tmp_path):
    _, ds, targets = data
    with pytest.raises(ConfigError, match="smaller than the 2 subjects"):
        train_decoders(tiny_config(ds, train={"batch_size": 1}), tmp_path / "a", targets)
    with pytest.raises(ConfigError, match="at least one subject besides the target"):
        train_decoders(tiny_config(ds, data={"pretrain_subjects": []}), tmp_path / "b", targets)
    with pytest.raises(DataError, match="no subject 'subj09'"):
        train_decoders(tiny_config(ds, data={"subject": "subj09"}), tmp_path / "c", targets)
    only_c = write_store(tmp_path / "c_only.hdf5", np.arange(3), {"c": np.zeros((3, 2, 2), np.float32)})
    with pytest.raises(DataError, match="asks for 'g'"):
        train_decoders(tiny_config(ds), tmp_path / "d", only_c)


def test_bf16_mixed_precision_on_cpu(data, tmp_path):
    _, ds, targets = data
    cfg = tiny_config(
        ds,
        decoder={"layout": "multi_head"},
        train={"mixed_precision": "bf16", "pretrain_epochs": 1, "finetune_epochs": 1, "ridge": False},
    )
    result = train_decoders(cfg, tmp_path / "run", targets)
    assert all(np.isfinite(r["final"]["loss"]) for r in result["runs"])
    model = BrainDecoder.from_pretrained(tmp_path / "run" / "decoders" / "all")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights stay fp32
