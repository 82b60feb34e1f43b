"""The evaluate stage end to end on fake reconstruction folders of real photos."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from neuraldiffuser.config import load_config
from neuraldiffuser.errors import DataError
from neuraldiffuser.evaluation import metrics
from neuraldiffuser.evaluation.preprocess import to_protocol
from neuraldiffuser.evaluation.runner import Evaluator, run_evaluation
from test_eval_helpers import FakeEncoder, degrade, photo_stimuli, register_encoder, write_recon, write_truth

ORDER = [4, 1, 5, 0, 3, 2]  # the manifest's test-image order (not sorted: alignment must follow the indices)


@pytest.fixture(scope="module")
def stimuli():
    return photo_stimuli(10)


@pytest.fixture
def setup(tmp_path, stimuli, monkeypatch, tiny_stack):
    encoder = FakeEncoder()
    truth = write_truth(tmp_path / "truth", stimuli, encoder)
    recon = tmp_path / "run" / "recon"
    gt = stimuli[ORDER]
    write_recon(recon, "oracle", "default", ORDER, np.stack([gt, gt]), stimuli)
    write_recon(
        recon,
        "shuffled",
        "default",
        ORDER,
        np.stack([np.roll(gt, 1, axis=0), np.roll(gt, 2, axis=0)]),
        stimuli,
    )
    config = load_config(
        preset="mini",
        overrides={
            "evaluate": {
                "metrics": [
                    "PixCorr",
                    "SSIM",
                    "AlexNet(2)",
                    "EffNet-Lite0 2-way",
                    "EffNet-Lite0 dist",
                    "mini-CLIP 2-way",
                    "Repeat SSIM",
                    "Brain corr.",
                ],
                "mini_clip": str(tiny_stack / "clip"),
                "torch_home": str(tmp_path / "torch"),
                "brain_encoder": register_encoder(monkeypatch, encoder),
                "batch_size": 4,
            }
        },
    )
    return truth, recon, config, encoder


def rows_by(doc, method, policy):
    return next(r for r in doc["rows"] if r["method"] == method and r["policy"] == policy)


def test_evaluate_scores_writes_and_explains(setup, stimuli, tmp_path):
    truth, recon, config, encoder = setup
    doc = run_evaluation([recon], truth, config, tmp_path / "out")
    assert [(r["method"], r["policy"]) for r in doc["rows"]] == [
        ("oracle", "repeat0"),
        ("oracle", "mean"),
        ("shuffled", "repeat0"),
        ("shuffled", "mean"),
    ]
    oracle = rows_by(doc, "oracle", "repeat0")["values"]
    assert oracle["PixCorr"] == pytest.approx(1.0) and oracle["SSIM"] == pytest.approx(1.0)
    assert (
        oracle["EffNet-Lite0 2-way"] == 1.0
        and oracle["mini-CLIP 2-way"] == 1.0
        and oracle["Repeat SSIM"] == pytest.approx(1.0)
    )
    assert oracle["EffNet-Lite0 dist"] == pytest.approx(0.0, abs=1e-6)
    # brain correlation of a perfect reconstruction equals the stimulus ceiling, per ROI
    ref = doc["references"][0]
    assert set(ref["values"]) == {"Brain corr. all", "Brain corr. V1", "Brain corr. V2", "Brain corr. higher"}
    for k, v in ref["values"].items():
        assert oracle[k] == pytest.approx(v) and 0.5 < v <= 1
    # shuffled: per-image values follow the manifest's image indices; repeat 1 enters only the mean row
    first, mean = rows_by(doc, "shuffled", "repeat0"), rows_by(doc, "shuffled", "mean")
    gt = stimuli[ORDER]
    np.testing.assert_allclose(
        first["per_image"]["PixCorr"],
        metrics.pixcorr(to_protocol(gt), to_protocol(np.roll(gt, 1, axis=0))),
        atol=1e-9,
    )
    assert (
        first["values"]["EffNet-Lite0 2-way"] < 0.8
        and first["values"]["Brain corr. all"] < ref["values"]["Brain corr. all"]
    )
    assert mean["values"]["PixCorr"] == pytest.approx(np.mean(mean["per_repeat"]["PixCorr"]))
    assert mean["per_repeat"]["PixCorr"][0] == pytest.approx(first["values"]["PixCorr"])
    assert len(first["per_image"]["SSIM"]) == 6 and first["images"] == ORDER
    # AlexNet weights are absent: unavailable with where it looked, in JSON (metric info and rows) and CSV
    expected = str(tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert expected in saved["metrics"]["AlexNet(2)"]["unavailable"]
    assert all(expected in r["values"]["AlexNet(2)"]["unavailable"] for r in saved["rows"])
    with open(tmp_path / "out" / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 5  # 4 rows + the stimulus reference
    assert all(r["AlexNet(2)"].startswith("unavailable: ") and expected in r["AlexNet(2)"] for r in table[:4])
    assert float(table[0]["PixCorr"]) == pytest.approx(1.0)
    assert (tmp_path / "out" / "evaluate_config.yaml").is_file()


def test_rerun_resumes_from_the_caches(setup, tmp_path, monkeypatch):
    truth, recon, config, _ = setup
    config.evaluate.metrics = ["PixCorr", "mini-CLIP 2-way", "mini-CLIP dist", "Repeat SSIM"]
    first = run_evaluation([recon], truth, config, tmp_path / "out")
    assert (
        len(list((tmp_path / "out" / ".cache" / "features").glob("mini_clip-*.npz"))) == 1
    )  # stimuli embedded once
    monkeypatch.setattr(
        Evaluator, "_score_repeat", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed"))
    )
    again = run_evaluation([recon], truth, config, tmp_path / "out")
    assert [r["values"] for r in again["rows"]] == [r["values"] for r in first["rows"]]


def test_brain_correlation_unavailable_without_an_encoder(tmp_path, stimuli):
    truth = write_truth(tmp_path / "truth", stimuli, FakeEncoder())
    recon = write_recon(
        tmp_path / "recon", "m", "s", [0, 1, 2], degrade(stimuli[[0, 1, 2]], 0.3, 0)[None], stimuli
    )
    config = load_config(
        overrides={
            "evaluate": {"metrics": ["PixCorr", "Brain corr.", "Repeat SSIM"], "brain_encoder": "auto"}
        }
    )
    doc = run_evaluation([recon], truth, config, tmp_path / "out")
    values = doc["rows"][0]["values"]
    assert (
        "simulator/" in values["Brain corr."]["unavailable"]
        and "GNet" in values["Brain corr."]["unavailable"]
    )
    assert "at least 2" in values["Repeat SSIM"]["unavailable"]
    assert 0 < values["PixCorr"] < 1 and doc["references"] == []


def test_retrieval_from_decoded_and_target_stores(tmp_path, stimuli):
    from neuraldiffuser.targets.store import write_store

    rng = np.random.default_rng(0)
    g = rng.normal(size=(10, 2, 5, 8)).astype(np.float32)
    write_store(tmp_path / "targets.hdf5", np.arange(10), {"g": g})
    order = np.array([3, 0, 2, 1])
    write_store(
        tmp_path / "decoded.hdf5",
        order,
        {"g": g[order] + 0.01 * rng.normal(size=(4, 2, 5, 8)).astype(np.float32)},
    )
    truth = write_truth(tmp_path / "truth", stimuli, FakeEncoder())
    recon = write_recon(tmp_path / "recon", "m", "s", [0, 1], stimuli[None, [0, 1]], stimuli)
    config = load_config(overrides={"evaluate": {"metrics": ["PixCorr"], "retrieval_draws": 4}})
    doc = run_evaluation(
        [recon],
        truth,
        config,
        tmp_path / "out",
        decoded=tmp_path / "decoded.hdf5",
        targets=tmp_path / "targets.hdf5",
    )
    ret = doc["retrieval"]
    assert (
        ret["forward"] == 1.0
        and ret["backward"] == 1.0
        and ret["subset"] == 4
        and ret["draws"] == 4
        and ret["key"] == "g"
    )


def test_cli_evaluate(tmp_path, stimuli, capsys):
    from neuraldiffuser.cli.main import main

    truth = write_truth(tmp_path / "truth", stimuli, FakeEncoder())
    recon = tmp_path / "recon"
    write_recon(
        recon,
        "m",
        "kappa=3e+05_eta=0.2",
        [0, 1, 2],
        np.stack([degrade(stimuli[[0, 1, 2]], 0.2, r) for r in range(2)]),
        stimuli,
        {"kappa": 3e5, "eta": 0.2},
    )
    code = main(["evaluate", str(recon), "--truth", str(truth), "--metrics", "PixCorr,SSIM,Repeat SSIM,SwAV"])
    assert code == 0
    out = capsys.readouterr().out
    assert "PixCorr" in out and "unavailable" in out and "swav_800ep_pretrain.pth.tar" in out
    doc = json.loads((recon / "metrics.json").read_text())
    assert doc["rows"][0]["sweep"] == [3e5, 0.2] and 0 < doc["rows"][0]["values"]["Repeat SSIM"] < 1
    assert main(["evaluate", str(tmp_path / "nothing"), "--truth", str(truth)]) == 2
    assert "path not found" in capsys.readouterr().err


@pytest.mark.parametrize("zscore", ["train", "none"])
def test_brain_correlation_uses_betas_in_the_decoders_units(tmp_path, stimuli, monkeypatch, zscore):
    """Raw betas carry per-voxel baselines; z-scoring with training statistics (data.zscore=train) keeps them
    from making any image look right. Without it a shuffled reconstruction scores almost as high
    as a perfect one."""
    encoder = FakeEncoder(baseline=20.0)
    truth = write_truth(tmp_path / "truth", stimuli, encoder, n_test=4)
    gt = stimuli[[0, 1, 2, 3]]
    recon = tmp_path / "recon"
    write_recon(recon, "oracle", "s", [0, 1, 2, 3], gt[None], stimuli)
    write_recon(recon, "shuffled", "s", [0, 1, 2, 3], np.roll(gt, 1, axis=0)[None], stimuli)
    config = load_config(
        overrides={
            "data": {"zscore": zscore},
            "evaluate": {"metrics": ["Brain corr."], "brain_encoder": register_encoder(monkeypatch, encoder)},
        }
    )
    doc = run_evaluation([recon], truth, config, tmp_path / "out")
    oracle, shuffled = (
        rows_by(doc, m, "repeat0")["values"]["Brain corr. all"] for m in ("oracle", "shuffled")
    )
    assert oracle > 0.9
    if zscore == "train":
        assert shuffled < 0.6 and oracle - shuffled > 0.3
    else:
        assert shuffled > 0.95


def test_brain_correlation_of_training_images_uses_their_own_trials(tmp_path, stimuli, monkeypatch):
    """Held-out training images (data.holdout_images) are scored against their training
    trials, not refused."""
    from neuraldiffuser.data import VoxelScaler, open_dataset

    encoder = FakeEncoder(baseline=20.0)
    truth = write_truth(tmp_path / "truth", stimuli, encoder, n_test=4)
    train = [4, 5, 6, 7]
    recon = tmp_path / "recon"
    write_recon(recon, "oracle", "s", train, stimuli[train][None], stimuli)
    write_recon(recon, "shuffled", "s", train, np.roll(stimuli[train], 1, axis=0)[None], stimuli)
    config = load_config(
        overrides={
            "evaluate": {"metrics": ["Brain corr."], "brain_encoder": register_encoder(monkeypatch, encoder)}
        }
    )
    doc = run_evaluation([recon], truth, config, tmp_path / "out")
    oracle, shuffled = (rows_by(doc, m, "repeat0") for m in ("oracle", "shuffled"))
    assert oracle["values"]["Brain corr. all"] > shuffled["values"]["Brain corr. all"] + 0.3
    # the known answer: Pearson r between the encoder's z-scored prediction and the image's one z-scored trial
    subj = open_dataset(truth).subject("subj01")
    scaler = VoxelScaler.fit(subj, subj.train_rows())
    rows = [int(subj.trials.row[(subj.trials.image == i)][0]) for i in train]
    measured = scaler.transform(subj.read(np.array(rows)))
    predicted = scaler.transform(encoder.predict(stimuli[train]))
    want = [np.corrcoef(m, p)[0, 1] for m, p in zip(measured, predicted, strict=True)]
    np.testing.assert_allclose(oracle["per_image"]["Brain corr. all"], want, atol=1e-4)
    write_recon(
        tmp_path / "never", "x", "s", [len(stimuli) + 5], stimuli[:1][None], np.concatenate([stimuli] * 2)
    )
    with pytest.raises(DataError, match="not shown to this subject"):
        run_evaluation([tmp_path / "never"], truth, config, tmp_path / "out2")
