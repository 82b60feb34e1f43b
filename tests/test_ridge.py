"""The ridge baseline against a direct solve, its penalty choice and its files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuraldiffuser.errors import DataError
from neuraldiffuser.models.ridge import RidgeDecoder, average_by_image, split_by_image, thin_svd


def _direct(x, y, alpha):
    xm, ym = x.mean(0), y.mean(0)
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, xm, ym


@pytest.mark.parametrize("n,v", [(40, 15), (12, 30)])  # more trials than voxels, and fewer
def test_matches_direct_solve(n, v):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, v))
    y = {"c": rng.standard_normal((n, 3, 2)), "z": rng.standard_normal((n, 5))}
    ridge = RidgeDecoder([2.5])
    ridge.chosen = {"c": 2.5, "z": 2.5}
    ridge.fit(x, y)
    x_new = rng.standard_normal((4, v))
    pred = ridge.predict(x_new)
    for name in y:
        w, xm, ym = _direct(x, y[name].reshape(n, -1), 2.5)
        np.testing.assert_allclose(ridge.weights(name), w, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(pred[name].reshape(4, -1), (x_new - xm) @ w + ym, rtol=1e-3, atol=1e-4)
        assert pred[name].shape == (4, *y[name].shape[1:])


def test_thin_svd_reconstructs():
    x = torch.randn(9, 5, dtype=torch.float64)
    for m in (x, x.T):
        u, s, v = thin_svd(m)
        torch.testing.assert_close(u @ torch.diag(s) @ v.T, m)


def test_penalty_choice_uses_held_out_images_only():
    """Noisy targets with few trials: validation error must prefer real shrinkage over none, and the
    chosen α is the grid point with the lowest held-out error."""
    rng = np.random.default_rng(1)
    n_img, v = 60, 40
    images = np.repeat(np.arange(n_img), 2)
    w_true = rng.standard_normal((v, 3)) * 0.3
    x = rng.standard_normal((len(images), v))
    y = x @ w_true + rng.standard_normal((len(images), 3)) * 2.0
    ridge = RidgeDecoder([1e-6, 10.0, 100.0, 1e9], val_fraction=0.25, seed=0)
    chosen = ridge.select(x, {"y": y}, images)
    errs = ridge.val_scores["y"]
    assert chosen["y"] == ridge.alphas[int(np.argmin(errs))]
    assert chosen["y"] in (10.0, 100.0) and errs[0] > min(errs) and errs[-1] > min(errs)
    fit, val = split_by_image(images, 0.25, 0)
    assert not set(images[fit]) & set(images[val])  # no image on both sides
    assert val.sum() == 2 * 15


def test_average_by_image():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    mean, images = average_by_image(x, np.array([5, 2, 5]))
    np.testing.assert_array_equal(images, [2, 5])
    np.testing.assert_allclose(mean, [[3.0, 4.0], [5.5, 1.0]])


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 6))
    ridge = RidgeDecoder([0.1, 1.0, 10.0], seed=3).fit(
        x, {"g0": rng.standard_normal((30, 2, 3))}, images=np.arange(30)
    )
    ridge.save(tmp_path / "ridge")
    back = RidgeDecoder.load(tmp_path / "ridge")
    assert back.chosen == ridge.chosen and back.shapes == {"g0": [2, 3]}
    np.testing.assert_array_equal(back.predict(x[:3])["g0"], ridge.predict(x[:3])["g0"])
    with pytest.raises(DataError, match="was fit on 6"):
        back.predict(x[:, :5])
