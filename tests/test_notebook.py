"""What a new user does in a notebook, with top-level names only: defaults, ridge on arrays, a demo run as a
pipeline, reconstructions, a saved pipeline moved elsewhere that gives identical images."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("single_thread")


def test_notebook_session(tmp_path, small_demo):
    import neuraldiffuser as nd

    # defaults are coherent: the mini zoo comes with its own sampler settings, not the paper's κ = 3e5
    config = nd.Config()
    assert (
        config.zoo.path == "builtin:insilico-64"
        and config.sampler.kappa == 300.0
        and config.sampler.strength == 0.6
    )

    # a demo run (tiny; the session's, copied here so this test may delete it) and its data as plain arrays
    shutil.copytree(small_demo / "demo", tmp_path / "demo")
    run = nd.train_demo_decoders(tmp_path / "demo", overrides=nd.SMALL_DEMO)  # finds every stage done
    ds = nd.open_dataset(tmp_path / "demo" / "data")
    subject = ds.subject("subj01")
    rows = subject.train_rows()
    betas, image_of_row = subject.read(rows), subject.image_of_rows(rows)
    test = subject.test_set(repeats=3)
    test_betas = subject.test_betas(test)

    # the ridge baseline on arrays, scikit-learn style
    targets = nd.extract_from_arrays(
        ds.images.get(np.arange(len(ds.images))),
        [ds.captions_of(i) for i in range(len(ds.images))],
        keys=("z",),
    )
    scaler = nd.VoxelScaler(betas.mean(0), betas.std(0) + 1e-6)
    ridge = nd.RidgeDecoder(alphas=[1e1, 1e3, 1e5]).fit(
        scaler.transform(betas), targets["z"][image_of_row], images=image_of_row
    )
    z_pred = ridge.predict(scaler.transform(test_betas))
    assert z_pred.shape == (len(test.images), *targets["z"].shape[1:])
    r = np.mean(
        [
            np.corrcoef(a.ravel(), b.ravel())[0, 1]
            for a, b in zip(z_pred, targets["z"][test.images], strict=True)
        ]
    )
    assert r > 0.1  # z is decodable from the simulated voxels

    # the demo run as a pipeline; reconstruct three test images
    pipe = nd.NeuralDiffuserPipeline.from_pretrained(run)
    images = pipe(test_betas[:3], images=test.images[:3], seed=7)
    assert images.shape == (3, 1, 64, 64, 3) and images.dtype == np.uint8 and images.std() > 5
    scores = nd.score_images(ds.images.get(test.images[:3]), images[:, 0])
    assert np.isfinite(scores["PixCorr"]).all() and (scores["SSIM"] > 0).all()

    # save, move the folder elsewhere, delete the run, load: identical images for the same seed
    saved = pipe.save_pretrained(tmp_path / "saved")
    moved = shutil.move(str(saved), str(tmp_path / "other_machine" / "model"))
    shutil.rmtree(tmp_path / "demo")
    again = nd.load_pipeline(moved)
    assert isinstance(again, nd.NeuralDiffuserPipeline)
    assert np.array_equal(again(test_betas[:3], images=test.images[:3], seed=7), images)

    # bad input fails in one line, naming the argument and what was expected
    with pytest.raises(nd.DataError, match=r"'betas' has shape \(3, 5\)"):
        again(test_betas[:3, :5])
    with pytest.raises(nd.ConfigError, match="'alphas' must be >= 0"):
        nd.RidgeDecoder(alphas=-1.0)
