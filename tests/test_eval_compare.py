"""Paired comparisons of settings (guided against κ = 0): known answers, alignment on
images, pairing rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from neuraldiffuser.errors import DataError
from neuraldiffuser.evaluation.compare import against_unguided, compare_rows, paired_difference


def test_paired_difference_known_answer_and_scipy_equivalence():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4)
    d = paired_difference(a, b)
    se = np.std([1, 2, 3, 4], ddof=1) / 2  # 0.6455
    assert d["n"] == 4 and d["mean"] == pytest.approx(2.5) and d["se"] == pytest.approx(se)
    assert d["ci95"] == pytest.approx([2.5 - 1.959964 * se, 2.5 + 1.959964 * se], rel=1e-6)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50) + 0.3
    d = paired_difference(x, y)
    assert d["se"] == pytest.approx(stats.sem(x - y)) and d["mean"] == pytest.approx(np.mean(x - y))
    lo, hi = stats.norm.interval(0.95, loc=d["mean"], scale=d["se"])
    assert d["ci95"] == pytest.approx([lo, hi])


def test_paired_difference_drops_non_finite_pairs_and_rejects_bad_input():
    d = paired_difference([1.0, np.nan, 3.0], [0.0, 5.0, 1.0])
    assert d["n"] == 2 and d["mean"] == pytest.approx(1.5)
    with pytest.raises(DataError, match="equal length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="no image"):
        paired_difference([np.nan], [1.0])


def row(setting, kappa, images, values, policy="repeat0", targets="decoded", method="neuraldiffuser"):
    per_image = {k: list(v) for k, v in values.items()}
    return {
        "method": method,
        "setting": setting,
        "policy": policy,
        "sweep": [kappa, 0.2],
        "images": list(images),
        "params": {"kappa": kappa, "targets": targets},
        "per_image": per_image,
    }


def test_compare_rows_pairs_by_image_index_not_by_position():
    guided = row(
        "kappa=30_eta=0.2",
        30.0,
        [3, 1, 2],
        {"SSIM": [0.3, 0.1, 0.2], "Brain corr. V1": [1, 1, 1], "Brain corr. all": [1, 2, 3]},
    )
    base = row(
        "kappa=0_eta=0", 0.0, [1, 2, 3, 9], {"SSIM": [0.0, 0.2, 0.1, 5.0], "Brain corr. all": [0, 0, 0, 0]}
    )
    diffs = compare_rows(guided, base)
    # image 1: 0.1−0.0, image 2: 0.2−0.2, image 3: 0.3−0.1 → mean 0.1; image 9 is not in both
    assert diffs["SSIM"]["n"] == 3 and diffs["SSIM"]["mean"] == pytest.approx(0.1)
    assert diffs["Brain corr. all"]["mean"] == pytest.approx(2.0)
    assert "Brain corr. V1" not in diffs  # per-ROI values are left to the brain section
    with pytest.raises(DataError, match="share no image"):
        compare_rows(guided, row("kappa=0_eta=0", 0.0, [7], {"SSIM": [0.0]}))


def test_against_unguided_pairs_each_guided_row_with_its_own_baseline():
    imgs = [0, 1, 2]
    rows = [
        row("kappa=0_eta=0", 0.0, imgs, {"SSIM": [0.5, 0.5, 0.5]}),
        row("kappa=30_eta=0.2", 30.0, imgs, {"SSIM": [0.6, 0.7, 0.8]}),
        row("kappa=0_eta=0", 0.0, imgs, {"SSIM": [0.1, 0.1, 0.1]}, policy="mean"),
        row("kappa=30_eta=0.2", 30.0, imgs, {"SSIM": [0.2, 0.2, 0.2]}, policy="mean"),
        row(
            "kappa=300_eta=0.2_oracle", 300.0, imgs, {"SSIM": [0.9, 0.9, 0.9]}, targets="true"
        ),  # no true-target κ 0 row
        row(
            "kappa=30_eta=0.2", 30.0, imgs, {"SSIM": [0.9, 0.9, 0.9]}, method="other"
        ),  # its method has no κ 0 row
    ]
    out = against_unguided(rows)
    assert [(c["setting"], c["policy"], c["baseline"]) for c in out] == [
        ("kappa=30_eta=0.2", "repeat0", "kappa=0_eta=0"),
        ("kappa=30_eta=0.2", "mean", "kappa=0_eta=0"),
    ]
    assert out[0]["differences"]["SSIM"]["mean"] == pytest.approx(0.2)
    assert out[1]["differences"]["SSIM"]["mean"] == pytest.approx(0.1) and out[1]["differences"]["SSIM"][
        "se"
    ] == pytest.approx(0.0, abs=1e-12)
