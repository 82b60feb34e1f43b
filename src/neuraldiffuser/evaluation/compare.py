"""Paired comparisons of settings scored on the same images: does guidance beat κ = 0, beyond the noise?

A table of means cannot say whether a 0.001 SSIM gain is real. Every metric keeps its per-image values
(``metrics.json``: ``per_image``), and two settings of one method see the same test images, so their
difference is paired: the mean of the per-image differences, with a 95% normal interval from the sample
standard deviation of those differences.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .registry import BRAIN_PREFIX

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def paired_difference(a, b) -> dict:
    """Mean of ``a − b`` over paired values, its standard error (sample SD / √n) and 95% normal interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"paired values must be two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    if n == 0:
        raise DataError("no image has a finite value in both settings")
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "se": se, "ci95": [mean - Z95 * se, mean + Z95 * se], "n": n}


def compared_metrics(row: dict) -> list[str]:
    """The per-image metrics worth comparing: all but the per-ROI brain correlations (the
    table shows 'all')."""
    return [k for k in row.get("per_image", {}) if not k.startswith(BRAIN_PREFIX) or k.endswith(" all")]


def compare_rows(row: dict, baseline: dict, names: list[str] | None = None) -> dict[str, dict]:
    """``row − baseline`` per metric, paired on the images both rows scored."""
    common, i_row, i_base = np.intersect1d(row["images"], baseline["images"], return_indices=True)
    if common.size == 0:
        raise DataError(
            f"{row['method']}/{row['setting']} and {baseline['setting']} share no image", where="metrics.json"
        )
    out = {}
    for name in names or compared_metrics(row):
        if name in row.get("per_image", {}) and name in baseline.get("per_image", {}):
            a, b = np.asarray(row["per_image"][name], float), np.asarray(baseline["per_image"][name], float)
            out[name] = paired_difference(a[i_row], b[i_base])
    return out


def against_unguided(rows: list[dict]) -> list[dict]:
    """Every guided row (κ > 0) against its method's κ = 0 row of the same policy, on the same targets."""

    def key(r: dict) -> tuple:
        return r["method"], r["policy"], r.get("params", {}).get("targets")

    baselines = {
        key(r): r for r in rows if r.get("sweep") and float(r["sweep"][0]) == 0.0 and r.get("per_image")
    }
    out = []
    for r in rows:
        base = baselines.get(key(r))
        if (
            base is None
            or r is base
            or not r.get("sweep")
            or float(r["sweep"][0]) == 0.0
            or not r.get("per_image")
        ):
            continue
        out.append(
            {
                "method": r["method"],
                "setting": r["setting"],
                "policy": r["policy"],
                "baseline": base["setting"],
                "differences": compare_rows(r, base),
            }
        )
    return out
