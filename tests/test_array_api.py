"""Estimators on arrays, scikit-learn style: RidgeDecoder.fit(X, Y)/predict(X), train_from_arrays,
score_images, and the one-line errors at the array boundary (utils/validation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from neuraldiffuser import (
    ConfigError,
    DataError,
    ModelLoadError,
    RidgeDecoder,
    score_images,
    train_from_arrays,
)
from neuraldiffuser.utils.validation import check_array


def regression(n=60, v=12, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, v)).astype(np.float32)
    w = rng.standard_normal((v, d)).astype(np.float32)
    return x, x @ w + 0.1 * rng.standard_normal((n, d)).astype(np.float32), w


def test_ridge_on_one_array_equals_the_closed_form_and_picks_a_small_alpha():
    x, y, w = regression()
    single = RidgeDecoder(alphas=2.0).fit(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = np.linalg.solve(xc.T @ xc + 2.0 * np.eye(x.shape[1]), xc.T @ yc)
    pred = single.predict(x[:7])
    assert isinstance(pred, np.ndarray) and pred.shape == (7, 5) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, (x[:7] - x.mean(0)) @ direct + y.mean(0), atol=1e-3)
    grid = RidgeDecoder(alphas=[1e-3, 1e6]).fit(x, y)  # low noise: the small penalty wins on held-out rows
    assert grid.chosen == {"y": 1e-3} and np.corrcoef(grid.predict(x).ravel(), y.ravel())[0, 1] > 0.99


def test_ridge_leave_one_out_errors_equal_refitting_without_each_row(tmp_path):
    """cv='loo': the exact LOO errors (one decomposition) equal n refits; both v < n and v > n."""
    for n, v in ((30, 12), (25, 40)):
        x, _, _ = regression(n=n, v=v, d=3, seed=n)
        y = x[:, :3] * 0.5 + np.random.default_rng(1).standard_normal((n, 3)).astype(np.float32)
        alphas = [0.3, 3.0, 30.0, 300.0]
        loo = RidgeDecoder(alphas=alphas, cv="loo").fit(x, y)
        brute = []
        for a in alphas:
            err = [
                (
                    RidgeDecoder(alphas=a).fit(np.delete(x, i, 0), np.delete(y, i, 0)).predict(x[i : i + 1])
                    - y[i]
                )
                ** 2
                for i in range(n)
            ]
            brute.append(float(np.mean(err)))
        np.testing.assert_allclose(loo.val_scores["y"], brute, rtol=2e-3)
        assert loo.chosen["y"] == alphas[int(np.argmin(brute))] and len(set(np.round(brute, 3))) == 4
    back = RidgeDecoder.load(loo.save(tmp_path / "r"))
    assert back.cv == "loo" and back.chosen == loo.chosen
    with pytest.raises(ConfigError, match="cv='loo' needs one row per image"):
        RidgeDecoder(alphas=alphas, cv="loo").fit(x, y, images=np.arange(n) // 2)


def test_ridge_array_save_load_round_trip(tmp_path):
    x, y, _ = regression()
    ridge = RidgeDecoder(alphas=[0.1, 10.0]).fit(x, y.reshape(60, 5, 1))
    back = RidgeDecoder.load(ridge.save(tmp_path / "r"))
    assert np.array_equal(back.predict(x[:3]), ridge.predict(x[:3])) and back.predict(x[:3]).shape == (
        3,
        5,
        1,
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, y: RidgeDecoder(alphas=-1.0), ConfigError, "'alphas' must be >= 0, got -1.0"),
        (lambda x, y: RidgeDecoder(alphas=[]), ConfigError, "'alphas' is empty"),
        (
            lambda x, y: RidgeDecoder(alphas=1.0).fit(x, y[:50]),
            DataError,
            "different numbers of rows: 'X' 60, 'Y' 50",
        ),
        (
            lambda x, y: RidgeDecoder(alphas=1.0).fit(np.where(np.eye(60, 12) > 0, np.nan, x), y),
            DataError,
            "'X' holds 12 NaN or Inf",
        ),
        (lambda x, y: RidgeDecoder(alphas=1.0).fit(x[:, :, None], y), DataError, "'X' must be 2-D"),
        (lambda x, y: RidgeDecoder(alphas=1.0).fit(x, y.astype(str)), DataError, "'Y' must be numeric"),
        (lambda x, y: RidgeDecoder(alphas=1.0).predict(x), ModelLoadError, "not fitted yet"),
        (lambda x, y: RidgeDecoder(alphas=1.0).fit(x, y).predict(x[:, :4]), DataError, "'X' has 4 voxels"),
        (lambda x, y: RidgeDecoder(alphas=1.0).fit(x, y, images=np.arange(59)), DataError, "'images' 59"),
    ],
)
def test_ridge_rejects_bad_inputs_in_one_line(call, error, match):
    x, y, _ = regression()
    with pytest.raises(error, match=match) as exc:
        call(x, y)
    assert "\n" not in str(exc.value)


def test_train_from_arrays_checks_its_inputs_before_writing(tmp_path):
    x, y, _ = regression(n=20)
    targets = {"z": y.reshape(20, 5, 1, 1)}
    with pytest.raises(DataError, match="'betas' has 19 rows and the targets 20: give 'images'"):
        train_from_arrays(x[:19], targets, tmp_path / "a")
    with pytest.raises(DataError, match=r"'images' values must lie in \[0, 19\]"):
        train_from_arrays(x, targets, tmp_path / "b", images=np.arange(1, 21))
    with pytest.raises(DataError, match="'targets' keys must be among z, c, g"):
        train_from_arrays(x, {"w": y}, tmp_path / "c")
    with pytest.raises(DataError, match="'subject' 'subj09' is not among"):
        train_from_arrays({"subj01": x}, targets, tmp_path / "d", subject="subj09")
    assert not any(tmp_path.iterdir())


def test_score_images_is_the_protocols_pixcorr_and_ssim():
    rng = np.random.default_rng(0)
    stim = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    recon = np.stack([stim, 255 - stim], axis=1)  # repeat 0 perfect, repeat 1 the negative
    s = score_images(stim, recon)
    assert (
        s["PixCorr"].shape == (4, 2)
        and np.allclose(s["PixCorr"][:, 0], 1.0)
        and np.allclose(s["PixCorr"][:, 1], -1.0)
    )
    assert (
        np.allclose(s["SSIM"][:, 0], 1.0) and (s["SSIM"][:, 1] < 0.5).all() and s["Repeat SSIM"].shape == (4,)
    )
    with pytest.raises(DataError, match="'reconstructions' must be uint8"):
        score_images(stim, recon / 255.0)
    with pytest.raises(DataError, match="different numbers of rows"):
        score_images(stim, recon[:3])


def test_ssim_grey_refuses_rgb_and_out_of_range_values():
    from neuraldiffuser.evaluation.metrics import ssim_grey

    rgb = np.zeros((2, 16, 16, 3))
    with pytest.raises(DataError, match="'real' holds RGB images"):
        ssim_grey(rgb, rgb)
    with pytest.raises(DataError, match=r"'pred' values must lie in \[-0.001, 1.001\]"):
        ssim_grey(np.zeros((2, 16, 16)), np.full((2, 16, 16), 255.0))


def test_check_array_names_the_argument_and_expectation():
    with pytest.raises(DataError, match=r"'b' has shape \(3, 4\), expected trailing shape \(…, \*, 5\)"):
        check_array(np.zeros((3, 4)), "b", shape=(None, 5))
    with pytest.raises(DataError, match="'i' must hold integers"):
        check_array([0.5, 1.0], "i", integer=True)
    assert check_array([[1, 2]], "ok", ndim=2).dtype == np.float32
