"""``evaluate`` on one image scores every per-image metric and names what needs at least two images."""

from __future__ import annotations

import numpy as np
import pytest

from neuraldiffuser.config import load_config
from neuraldiffuser.evaluation import metrics
from neuraldiffuser.evaluation.preprocess import to_protocol
from neuraldiffuser.evaluation.runner import run_evaluation
from neuraldiffuser.targets.store import write_store
from test_eval_helpers import FakeEncoder, photo_stimuli, write_recon, write_truth


def test_one_image_scores_what_it_can(tmp_path):
    stimuli = photo_stimuli(8)
    truth = write_truth(tmp_path / "truth", stimuli, FakeEncoder())
    recon = write_recon(
        tmp_path / "recon", "m", "s", [2], np.stack([stimuli[[1]], stimuli[[2]]]), stimuli
    )  # repeat 1 is exact
    g = np.random.default_rng(0).normal(size=(8, 2, 5, 8)).astype(np.float32)
    write_store(tmp_path / "targets.hdf5", np.arange(8), {"g": g})
    write_store(tmp_path / "decoded.hdf5", np.array([2]), {"g": g[[2]]})
    config = load_config(
        overrides={
            "evaluate": {
                "metrics": ["PixCorr", "SSIM", "EffNet-Lite0 2-way", "EffNet-Lite0 dist"],
                "torch_home": str(tmp_path / "torch"),
            }
        }
    )
    doc = run_evaluation(
        [recon],
        truth,
        config,
        tmp_path / "out",
        decoded=tmp_path / "decoded.hdf5",
        targets=tmp_path / "targets.hdf5",
    )
    first, mean = doc["rows"]
    assert first["n_images"] == 1 and first["policy"] == "repeat0"
    want = metrics.pixcorr(to_protocol(stimuli[[2]]), to_protocol(stimuli[[1]]))
    assert first["values"]["PixCorr"] == pytest.approx(float(want[0])) and mean["per_repeat"]["PixCorr"][
        1
    ] == pytest.approx(1.0)
    assert 0 <= first["values"]["SSIM"] < 1 and isinstance(first["values"]["EffNet-Lite0 dist"], float)
    assert mean["per_repeat"]["EffNet-Lite0 dist"][1] == pytest.approx(0.0, abs=1e-6)
    for row in (first, mean):
        assert row["values"]["EffNet-Lite0 2-way"] == {
            "unavailable": "two-way identification needs at least 2 images; the folder has 1"
        }
        assert "EffNet-Lite0 2-way" not in row["per_image"]
    assert doc["retrieval"]["unavailable"] == "retrieval needs at least 2 images; decoded.hdf5 has 1"
