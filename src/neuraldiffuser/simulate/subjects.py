"""Drawing a subject: voxel counts per ROI, pRFs, filter-bank tuning, semantic weights and noise levels.

All randomness comes from the generator passed in, so a subject is a deterministic function of
(seed, subject index). The constants and their sources are in ``presets.py`` and docs/simulator.md.
"""

from __future__ import annotations

import numpy as np

from .encoding import FIELD_DEG
from .features import COLOR_SF_CPI, N_CHANNELS, ORIENTATIONS_DEG, SF_CPI
from .presets import (
    CSS_EXPONENT,
    HIGHER,
    HIGHER_MIX,
    NC_SPREAD,
    NOISE_CEILING,
    PRF_SIZE,
    RETINOTOPIC,
    ROI_FRACTIONS,
    ROI_NAMES,
    SEMANTIC_EMPHASIS,
    SF_AREA_FACTOR,
)
from .semantic import ATTRIBUTES, GROUP_OF


def roi_counts(rng: np.random.Generator, n_voxels: int) -> dict[str, int]:
    """Voxels per ROI: the base shares, jittered per subject (lognormal, 15%), at least 1 voxel each."""
    frac = np.array([ROI_FRACTIONS[r] for r in ROI_NAMES]) * rng.lognormal(0.0, 0.15, len(ROI_NAMES))
    counts = np.maximum(1, np.floor(frac / frac.sum() * n_voxels)).astype(int)
    counts[0] += n_voxels - counts.sum()
    return dict(zip(ROI_NAMES, counts.tolist(), strict=True))


def _positions(rng: np.random.Generator, n: int, max_ecc: float, e0: float = 0.8):
    """pRF centres with a foveal bias (density ∝ 1/(ecc + e0), like cortical magnification),
    inside the image."""
    half = FIELD_DEG / 2
    xs, ys = [], []
    while sum(len(x) for x in xs) < n:
        u = rng.random(2 * n + 16)
        ecc = e0 * ((max_ecc + e0) / e0) ** u - e0
        ang = rng.uniform(0, 2 * np.pi, len(u))
        x, y = ecc * np.cos(ang), ecc * np.sin(ang)
        keep = (np.abs(x) <= half) & (np.abs(y) <= half)
        xs.append(x[keep])
        ys.append(y[keep])
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _tuning(rng: np.random.Generator, roi: str, ecc: np.ndarray, polar: np.ndarray) -> np.ndarray:
    """(n, N_CHANNELS) non-negative weights over the filter bank's channels."""
    n = len(ecc)
    higher = roi in HIGHER
    factor = 2.5 if higher else SF_AREA_FACTOR[roi]
    pref = np.clip(24.0 / (1 + ecc / 1.2) / factor * rng.lognormal(0, 0.25, n), SF_CPI[0], SF_CPI[-1])
    width = 1.5 if higher else 1.0  # octaves
    sf_w = np.exp(-(np.log2(np.array(SF_CPI)[None, :] / pref[:, None]) ** 2) / (2 * width**2))
    # Weak orientation bias, radial on average (Sasaki et al. 2006; Freeman et al. 2011). Filter
    # orientations are directions in the frequency plane: a radial grating varies across the radius.
    theta = polar + np.pi / 2 + rng.normal(0, np.deg2rad(20), n)
    amp = rng.uniform(0, 0.35, n)
    ori = np.deg2rad(ORIENTATIONS_DEG)[None, :]
    ori_w = 1 + amp[:, None] * np.cos(2 * (ori - theta[:, None]))
    lum = (sf_w[:, :, None] * ori_w[:, None, :]).reshape(n, -1)
    color_gain = {"hV4": 2.0, "VO": 2.5}.get(roi, 1.0)
    col_sf = np.exp(-(np.log2(np.array(COLOR_SF_CPI)[None, :] / np.minimum(pref, 8.0)[:, None]) ** 2) / 2)
    col = np.concatenate([col_sf * rng.uniform(0.1, 0.4, (n, 1)) * color_gain for _ in range(2)], axis=1)
    hue = rng.uniform(0, 2 * np.pi, n)
    kappa = rng.uniform(0.2, 0.6, n) * color_gain
    signed = np.stack(
        [
            rng.uniform(0, 0.3, n),
            rng.uniform(0, 0.3, n),
            kappa * np.maximum(np.cos(hue), 0),
            kappa * np.maximum(-np.cos(hue), 0),
            kappa * np.maximum(np.sin(hue), 0),
            kappa * np.maximum(-np.sin(hue), 0),
        ],
        axis=1,
    )
    out = np.concatenate([lum, col, signed], axis=1)
    assert out.shape[1] == N_CHANNELS
    return out


def _semantic_weights(rng: np.random.Generator, roi: str, n: int) -> np.ndarray:
    if roi not in HIGHER:
        return np.zeros((n, len(ATTRIBUTES)))
    emphasis = np.array([SEMANTIC_EMPHASIS[roi][g] for g in GROUP_OF])
    return rng.normal(0, 1, (n, len(ATTRIBUTES))) * emphasis[None, :]


def draw_subject(rng: np.random.Generator, n_voxels: int) -> dict[str, np.ndarray]:
    """Uncalibrated per-voxel parameters (standardisation, gain and noise come from ``calibrate``)."""
    counts = roi_counts(rng, n_voxels)
    blocks = []
    for code, roi in enumerate(ROI_NAMES):
        n = counts[roi]
        if roi in RETINOTOPIC:
            x, y = _positions(rng, n, max_ecc=6.0)
            a, b = PRF_SIZE[roi]
            ecc = np.hypot(x, y)
            sigma = (a + b * ecc) * rng.lognormal(0, 0.15, n)
            mix = np.ones(n)
        else:
            x, y = _positions(rng, n, max_ecc=3.0)
            ecc = np.hypot(x, y)
            sigma = rng.uniform(1.5, 4.0, n)
            mix = np.clip(HIGHER_MIX[roi] + rng.normal(0, 0.05, n), 0.05, 0.6)
        exponent = np.clip(CSS_EXPONENT[roi] + rng.normal(0, 0.05, n), 0.1, 1.0)
        polar = np.arctan2(-y, x)  # in image coordinates (y down), like the filter orientations
        logit = np.log(NOISE_CEILING[roi] / (1 - NOISE_CEILING[roi])) + rng.normal(0, NC_SPREAD, n)
        target_nc = 1 / (1 + np.exp(-logit))  # logit-normal: the ROI's median is exactly NOISE_CEILING
        blocks.append(
            {
                "roi": np.full(n, code),
                "prf_x": x,
                "prf_y": y,
                "prf_sigma": sigma,
                "exponent": exponent,
                "tuning": _tuning(rng, roi, ecc, polar),
                "semantic_weights": _semantic_weights(rng, roi, n),
                "mix": mix,
                "target_nc": np.clip(target_nc, 0.01, 0.95),
            }
        )
    params = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    params["roi"] = params["roi"].astype(np.int16)
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in params.items()}


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sd = x.std(axis=0)
    return x.mean(axis=0).astype(np.float32), np.where(sd > 1e-8, sd, 1.0).astype(np.float32)


def calibrate(
    params: dict, ret: np.ndarray, sem: np.ndarray, rng: np.random.Generator, noise_factor: float
) -> None:
    """Set standardisation from the subject's own stimuli, betas units (% signal change-like) and noise.

    ``noise_factor`` (per subject) scales the noise SD; the stored ``target_nc`` is the resulting
    single-trial noise ceiling, ncsnr² / (ncsnr² + 1) with ncsnr = gain / noise SD.
    """
    params["ret_mean"], params["ret_std"] = _stats(ret)
    params["sem_mean"], params["sem_std"] = _stats(sem)
    z = np.sqrt(params["mix"]) * (ret - params["ret_mean"]) / params["ret_std"]
    z += np.sqrt(1 - params["mix"]) * (sem - params["sem_mean"]) / params["sem_std"]
    params["mu_mean"], params["mu_std"] = _stats(z)
    n = len(params["roi"])
    params["baseline"] = rng.normal(0.8, 0.4, n).astype(np.float32)
    params["gain"] = rng.lognormal(np.log(0.8), 0.3, n).astype(np.float32)
    if noise_factor <= 0:  # noiseless betas
        params["noise_sd"], params["target_nc"] = np.zeros(n, np.float32), np.ones(n, np.float32)
        return
    nc = params["target_nc"].astype(np.float64)
    ncsnr = np.sqrt(nc / (1 - nc)) / noise_factor
    params["noise_sd"] = (params["gain"] / ncsnr).astype(np.float32)
    params["target_nc"] = (ncsnr**2 / (ncsnr**2 + 1)).astype(np.float32)
