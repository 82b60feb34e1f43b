"""A two-stage run on known linear data, then decoding: run folder, test order, repeat modes, z matching."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from decoder_fixtures import make_decoder_data, one_thread, tiny_config
from neuraldiffuser.data import VoxelScaler, open_dataset
from neuraldiffuser.models.brain import BrainDecoder
from neuraldiffuser.targets.store import TargetStore
from neuraldiffuser.training.decode import decode_betas, decode_test, match_distribution
from neuraldiffuser.training.runner import train_decoders


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode")
    ds, targets, _ = make_decoder_data(root)
    cfg = tiny_config(ds, train={"pretrain_epochs": 2, "finetune_epochs": 2})
    train_decoders(cfg, root / "run", targets)
    return cfg, root / "run", ds, targets


def test_run_folder(run):
    cfg, run_dir, ds, targets = run
    manifest = json.loads((run_dir / "decoders" / "manifest.json").read_text())
    assert manifest["subject"] == "subj01" and manifest["models"] == {
        "c": ["c"],
        "g0": ["g0"],
        "g1": ["g1"],
        "z": ["z"],
    }
    for name in manifest["models"]:
        pre = BrainDecoder.from_pretrained(run_dir / "pretrain" / name / "model")
        fin = BrainDecoder.from_pretrained(run_dir / "decoders" / name)
        assert set(pre.config.subjects) == {"subj02", "subj03"} and fin.config.subjects == {"subj01": 30}
    assert BrainDecoder.from_pretrained(run_dir / "decoders" / "z").config.style == "latent"
    subj = open_dataset(ds).subject("subj01")
    scaler = VoxelScaler.load(run_dir / "decoders" / "scaler.safetensors")
    x = subj.read(subj.train_rows())
    np.testing.assert_allclose(scaler.mean, x.mean(0), rtol=1e-5)
    stats = load_file(str(run_dir / "decoders" / "z_stats.safetensors"))
    z = TargetStore(targets).get_images("z", np.unique(subj.train_images()))
    np.testing.assert_allclose(stats["mean"], z.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["std"], z.std(0), atol=1e-6)
    assert (run_dir / "ridge" / "ridge.json").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(r["stage"], r["model"]) for r in summary["runs"]][:2] == [("pretrain", "c"), ("finetune", "c")]
    assert summary["runs"][0]["global_batch"] == 12 and summary["runs"][1]["global_batch"] == 12


@pytest.mark.parametrize("order", ["first_seen", "sorted"])
def test_decoded_store_keeps_test_order(run, tmp_path, order):
    cfg, run_dir, ds, targets = run
    cfg = cfg.model_copy(deep=True)
    cfg.data.test_order = order
    out = decode_test(cfg, run_dir, tmp_path / "decoded.hdf5")
    expected = open_dataset(ds).subject("subj01").test_set(3, order).images
    truth = TargetStore(targets)
    with TargetStore(out) as st:
        np.testing.assert_array_equal(st.image, expected)
        assert st.keys == ["z", "c", "g"] and {k: st.shape(k) for k in st.keys} == {
            k: truth.shape(k) for k in st.keys
        }
        assert (
            st.attrs["subject"] == "subj01"
            and st.attrs["method"] == "neuraldiffuser"
            and st.attrs["average"] == "voxels"
        )
        assert (
            st.attrs["test_order"] == order
            and st.attrs["prior_steps"] == 5
            and st.attrs["latent_scale"] == 0.5
        )
        assert st.attrs["source_run"] == str(run_dir.resolve())


def test_z_distribution_matching(run, tmp_path):
    cfg, run_dir, _, _ = run
    stats = load_file(str(run_dir / "decoders" / "z_stats.safetensors"))
    matched = TargetStore(decode_test(cfg, run_dir, tmp_path / "m.hdf5")).get("z", np.arange(12))
    np.testing.assert_allclose(matched.mean(0), stats["mean"], atol=1e-5)
    np.testing.assert_allclose(matched.std(0), stats["std"], rtol=1e-3, atol=1e-6)
    cfg = cfg.model_copy(deep=True)
    cfg.decode.z_match = False
    raw = TargetStore(decode_test(cfg, run_dir, tmp_path / "r.hdf5")).get("z", np.arange(12))
    np.testing.assert_allclose(match_distribution(raw, stats["mean"], stats["std"]), matched, atol=1e-5)


def test_any_trials_decode_like_the_test_set(run, tmp_path):
    """decode_betas on training trials of chosen images: same decoders, scaler and attributes
    as the test path."""
    cfg, run_dir, ds, _ = run
    cfg = cfg.model_copy(deep=True)
    cfg.decode.use_prior = False
    subj = open_dataset(ds).subject("subj01")
    rows = subj.train_rows()[:5]
    images = subj.image_of_rows(rows)
    out = TargetStore(
        decode_betas(cfg, run_dir, subj.read(rows), images, tmp_path / "val.hdf5", attrs={"validation": "x"})
    )
    np.testing.assert_array_equal(out.image, images)
    assert (
        out.attrs["validation"] == "x" and out.attrs["subject"] == "subj01" and "test_order" not in out.attrs
    )
    x = VoxelScaler.load(run_dir / "decoders" / "scaler.safetensors").transform(subj.read(rows))
    model = BrainDecoder.from_pretrained(run_dir / "decoders" / "c").eval()
    expected = model.decode("subj01", torch.from_numpy(x), use_prior=False)["c"].numpy()
    np.testing.assert_allclose(out.get("c", np.arange(5)), expected.reshape(5, *out.shape("c")), atol=1e-5)
    with pytest.raises(ValueError, match="5 rows of betas for 4 images"):
        decode_betas(cfg, run_dir, subj.read(rows), images[:4], tmp_path / "bad.hdf5")


def test_repeat_averaging_modes(run, tmp_path):
    cfg, run_dir, ds, _ = run
    cfg = cfg.model_copy(deep=True)
    cfg.decode.z_match, cfg.decode.use_prior = False, False
    vox = TargetStore(decode_test(cfg, run_dir, tmp_path / "v.hdf5", method="ridge"))
    cfg.data.average = "outputs"
    outs = TargetStore(decode_test(cfg, run_dir, tmp_path / "o.hdf5", method="ridge"))
    for k in ("c", "g", "z"):  # a linear decoder gives the same either way
        np.testing.assert_allclose(vox.get(k, np.arange(12)), outs.get(k, np.arange(12)), atol=2e-3)
    assert outs.attrs["average"] == "outputs" and outs.attrs["method"] == "ridge"
    # the MLP: output averaging is the mean of the per-repeat decodes
    neural = TargetStore(decode_test(cfg, run_dir, tmp_path / "n.hdf5"))
    subj = open_dataset(ds).subject("subj01")
    test = subj.test_set(3, "first_seen")
    x = VoxelScaler.load(run_dir / "decoders" / "scaler.safetensors").transform(
        subj.test_betas(test, "outputs")
    )
    model = BrainDecoder.from_pretrained(run_dir / "decoders" / "c").eval()
    per_rep = [model.decode("subj01", torch.from_numpy(x[:, r]), use_prior=False)["c"] for r in range(3)]
    np.testing.assert_allclose(
        neural.get("c", np.arange(12)), torch.stack(per_rep).mean(0).numpy(), atol=1e-5
    )


def test_prior_sampling_is_seeded(run, tmp_path):
    cfg, run_dir, _, _ = run
    a = TargetStore(decode_test(cfg, run_dir, tmp_path / "a.hdf5")).get("c", np.arange(12))
    b = TargetStore(decode_test(cfg, run_dir, tmp_path / "b.hdf5")).get("c", np.arange(12))
    np.testing.assert_array_equal(a, b)
    cfg = cfg.model_copy(deep=True)
    cfg.decode.seed = 99
    c = TargetStore(decode_test(cfg, run_dir, tmp_path / "c.hdf5")).get("c", np.arange(12))
    assert not np.allclose(a, c)


def test_cli_decode_with_ridge(run, tmp_path):
    from neuraldiffuser.cli.main import main
    from neuraldiffuser.config import save_config

    cfg, run_dir, ds, _ = run
    save_config(cfg, run_dir)
    out = tmp_path / "dec" / "decoded.hdf5"
    assert main(["decode", str(run_dir), "--out", str(out), "--ridge", "--set", "decode.prior_steps=2"]) == 0
    assert TargetStore(out).attrs["prior_steps"] == 2
    assert TargetStore(out.with_name("decoded_ridge.hdf5")).attrs["method"] == "ridge"
    assert (out.parent / "decoded.config.yaml").is_file()
    assert main(["decode", str(tmp_path)]) == 2  # not a run folder
    other = tmp_path / "other" / "decoded.hdf5"
    assert (
        main(["decode", str(run_dir), "--out", str(other), "--set", "data.subject=subj02"]) == 2
    )  # trained for subj01
    assert not other.exists()


def test_decoders_learn_the_linear_targets(tmp_path):
    """With enough steps the fine-tuned decoders recover held-out targets well above chance."""
    ds, targets, _ = make_decoder_data(tmp_path, noise=0.3)
    cfg = tiny_config(
        ds,
        decoder={"layout": "multi_head", "prior": []},
        train={"pretrain_epochs": 12, "finetune_epochs": 12, "lr": 3e-3, "clip_scale": 0.1, "ridge": False},
    )
    train_decoders(cfg, tmp_path / "run", targets)
    dec = TargetStore(decode_test(cfg, tmp_path / "run", tmp_path / "d.hdf5"))
    truth = TargetStore(targets)
    for key, floor in (("c", 0.7), ("g", 0.7), ("z", 0.5)):
        a = dec.get(key, np.arange(len(dec))).reshape(len(dec), -1)
        b = truth.get_images(key, dec.image).reshape(len(dec), -1)
        r = np.mean([np.corrcoef(p, t)[0, 1] for p, t in zip(a, b, strict=True)])
        assert r > floor, (key, r)
