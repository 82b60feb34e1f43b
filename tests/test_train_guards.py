"""Training refuses inputs that would train to nonsense without a word: an incomplete target store, targets of
another dataset, NaN/Inf targets or betas, prior heads that do not fit the targets; and stops at
a non-finite loss."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neuraldiffuser.cli.main import main
from neuraldiffuser.errors import ConfigError, DataError
from neuraldiffuser.targets.store import TargetStore


def _small_decoder_data(root, **kw):
    from decoder_fixtures import make_decoder_data

    return make_decoder_data(root, subjects=(("subj01", 8), ("subj02", 9)), n_train=8, n_test=4, **kw)


def test_train_refuses_an_incomplete_target_store(tmp_path, capsys):
    ds, targets, _ = _small_decoder_data(tmp_path)
    with h5py.File(targets, "a") as f:
        f["done"][5:8] = False
    rc = main(["train", str(ds), str(targets), "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "incomplete store: 3 of 20 rows were never written" in err and str(targets) in err
    assert not (tmp_path / "run" / "decoders").exists()


def test_train_refuses_targets_of_another_dataset(tmp_path, capsys):
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.data.fingerprint import dataset_fingerprint

    ds, targets, _ = _small_decoder_data(tmp_path / "a")
    other, _, _ = _small_decoder_data(tmp_path / "b", seed=1)
    with h5py.File(targets, "a") as f:
        f.attrs["dataset"], f.attrs["dataset_fingerprint"] = (
            str(other),
            dataset_fingerprint(open_dataset(other)),
        )
    assert main(["train", str(ds), str(targets), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert (
        f"{targets}: targets were extracted from another dataset ({other}: 20 images 8x8 " in err
        and f"not {ds} (20 images 8x8 " in err
    )
    with h5py.File(targets, "a") as f:
        f.attrs["dataset_fingerprint"] = dataset_fingerprint(open_dataset(ds))
    with TargetStore(targets) as st:
        st.require_made_from(open_dataset(ds))  # its own dataset passes


def test_nan_targets_are_refused_naming_the_key_and_images(tmp_path, capsys):
    ds, targets, _ = _small_decoder_data(tmp_path)
    with h5py.File(targets, "a") as f:
        c = f["c"][()]
        c[[5, 13], 0, 1] = [np.nan, np.inf]
        f["c"][...] = c
    with TargetStore(targets) as st:
        np.testing.assert_array_equal(
            st.get("c", [0, 4]), c[[0, 4]].astype(np.float32)
        )  # finite rows read as they are
        with pytest.raises(DataError, match=r"targets\.hdf5:c: NaN/Inf in the targets of 2 images \(5, 13\)"):
            st.get_images("c", [4, 13, 5, 13])
    args = [
        "--set",
        "decoder.targets=[c]",
        "--set",
        "decoder.prior_heads=2",
        "--set",
        "decoder.hidden=32",
    ]  # heads that divide the tiny width 8; small decoders, so the free-disk check passes on a small disk
    assert main(["train", str(ds), str(targets), "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert f"{targets}:c: NaN/Inf in the targets of " in err and "13" in err
    assert not (tmp_path / "run" / "decoders").exists()


def test_a_non_finite_loss_stops_training_before_it_is_checkpointed(tmp_path, monkeypatch, capsys):
    from decoder_fixtures import tiny_config
    from neuraldiffuser.config import save_config
    from neuraldiffuser.training import loop

    ds, targets, _ = _small_decoder_data(tmp_path)
    cfg = tiny_config(
        ds,
        decoder={"layout": "multi_head", "targets": ["c"]},
        train={"stages": ["finetune"], "finetune_epochs": 6, "checkpoint_every": 2, "ridge": False},
    )
    real, calls = loop.objective, {"n": 0}

    def diverges_at_step_5(*args, **kwargs):
        loss, logs = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 5:
            loss, logs = loss * float("nan"), {**logs, "loss": float("nan")}
        return loss, logs

    monkeypatch.setattr(loop, "objective", diverges_at_step_5)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(ds),
                str(targets),
                "--out",
                str(run),
                "--config",
                str(save_config(cfg, tmp_path, "cfg.yaml")),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        "training diverged: the loss is nan at step 5 of " in err
        and "the last checkpoint (step 4) is kept" in err
    )
    ckpts = sorted(p.name for p in (run / "finetune" / "all" / "checkpoints").iterdir())
    assert (
        ckpts[-1] == "step-00000004"
        and not (run / "finetune" / "all" / "model").exists()
        and not (run / "decoders").exists()
    )


def test_train_refuses_nan_betas(tmp_path, capsys):
    from decoder_fixtures import tiny_config
    from neuraldiffuser.config import save_config
    from neuraldiffuser.data import open_dataset

    ds, targets, _ = _small_decoder_data(tmp_path)
    row = int(open_dataset(ds).subject("subj02").train_rows()[3])  # a training trial of a pretraining subject
    betas = ds / "subjects" / "subj02" / "betas.hdf5"
    with h5py.File(betas, "a") as f:
        f["betas"][row, 2] = np.inf
    for zscore in ("train", "none"):  # through the scaler's fit, or straight into training
        cfg = save_config(
            tiny_config(ds, data={"zscore": zscore}, train={"ridge": False}), tmp_path, f"{zscore}.yaml"
        )
        assert (
            main(
                [
                    "train",
                    str(ds),
                    str(targets),
                    "--out",
                    str(tmp_path / f"run-{zscore}"),
                    "--config",
                    str(cfg),
                ]
            )
            == 2
        )
        assert f"{betas}:betas: 1 NaN/Inf values in betas rows [{row}]" in capsys.readouterr().err


def test_prior_heads_that_do_not_divide_the_target_width_are_a_config_error(tmp_path, capsys):
    ds, targets, _ = _small_decoder_data(tmp_path)  # c is 4 tokens × 8 wide; the default prior has 12 heads
    assert (
        main(["train", str(ds), str(targets), "--out", str(tmp_path / "run"), "--set", "decoder.targets=[c]"])
        == 2
    )
    assert (
        "decoder.prior_heads: decoder.prior_heads 12 does not divide the width 8 of the 'c' targets"
        in capsys.readouterr().err
    )


def test_the_mindeye2_prior_takes_heads_that_do_not_divide_the_width():
    """The paper preset's prior: 14 heads of 52 channels on 768-wide targets (only 'ours'
    splits the width)."""
    from neuraldiffuser.config import load_config
    from neuraldiffuser.training.specs import head_spec

    cfg = load_config(preset="paper").decoder
    assert cfg.prior_network == "mindeye2" and 768 % cfg.prior_heads
    assert head_spec("c", (77, 768), cfg, 0)["prior"]
    with pytest.raises(ConfigError, match="does not divide the width 768"):
        head_spec("c", (77, 768), cfg.model_copy(update={"prior_network": "ours"}), 0)
