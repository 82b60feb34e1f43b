"""NSD-like experiment design and the measurement model (session drift, correlated trial noise).

Each subject sees the shared test images ``test_repeats`` times and its own training images 1–3
times; all presentations are shuffled over the whole experiment and cut into equal sessions, so an
image's repeats usually fall in different sessions, as in NSD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .presets import DRIFT_FRACTION, SHARED_NOISE_FRACTION, Preset

N_NOISE_FACTORS = 4


@dataclass
class Design:
    """One subject's trials in presentation order."""

    image: np.ndarray  # (trials,) dataset image index
    session: np.ndarray  # (trials,) 1-based
    split: np.ndarray  # (trials,) 'train' | 'test'


def make_design(
    rng: np.random.Generator, preset: Preset, test_ids: np.ndarray, train_ids: np.ndarray
) -> Design:
    repeats = rng.choice([1, 2, 3], size=len(train_ids), p=preset.train_repeat_probs)
    image = np.concatenate([np.repeat(test_ids, preset.test_repeats), np.repeat(train_ids, repeats)])
    is_test = np.concatenate(
        [np.ones(len(test_ids) * preset.test_repeats, bool), np.zeros(int(repeats.sum()), bool)]
    )
    order = rng.permutation(len(image))
    image, is_test = image[order], is_test[order]
    session = 1 + (np.arange(len(image)) * preset.sessions) // len(image)
    return Design(image.astype(np.int64), session.astype(np.int32), np.where(is_test, "test", "train"))


def measure(
    rng: np.random.Generator,
    mu: np.ndarray,
    design: Design,
    row_of_image: dict[int, int],
    noise_sd: np.ndarray,
) -> np.ndarray:
    """Betas = noiseless response + session drift (offset + linear trend) + trial noise, float32.

    Drift carries ``DRIFT_FRACTION`` of each voxel's noise variance; ``SHARED_NOISE_FRACTION`` of the
    trial noise comes from a few latent factors shared by all voxels (global signals, head motion).
    Generated one session at a time, so memory stays at one betas array.
    """
    n_vox = mu.shape[1]
    rows = np.array([row_of_image[int(i)] for i in design.image])
    drift_sd = (np.sqrt(DRIFT_FRACTION) * noise_sd).astype(np.float32)
    trial_sd = (np.sqrt(1 - DRIFT_FRACTION) * noise_sd).astype(np.float32)
    loadings = rng.normal(0, 1, (n_vox, N_NOISE_FACTORS))
    loadings = (loadings / np.linalg.norm(loadings, axis=1, keepdims=True)).astype(np.float32)
    betas = np.empty((len(rows), n_vox), dtype=np.float32)
    for s in np.unique(design.session):
        idx = np.flatnonzero(design.session == s)
        pos = (
            np.linspace(-1, 1, len(idx), dtype=np.float32)[:, None]
            if len(idx) > 1
            else np.zeros((1, 1), np.float32)
        )
        offset = rng.standard_normal(n_vox, dtype=np.float32) * np.float32(np.sqrt(0.5)) * drift_sd
        slope = (
            rng.standard_normal(n_vox, dtype=np.float32) * np.float32(np.sqrt(1.5)) * drift_sd
        )  # var(slope·u) = var(slope)/3, u ~ U(-1, 1)
        shared = rng.standard_normal((len(idx), N_NOISE_FACTORS), dtype=np.float32) @ loadings.T
        own = rng.standard_normal((len(idx), n_vox), dtype=np.float32)
        noise = (
            np.float32(np.sqrt(SHARED_NOISE_FRACTION)) * shared
            + np.float32(np.sqrt(1 - SHARED_NOISE_FRACTION)) * own
        ) * trial_sd
        betas[idx] = mu[rows[idx]] + offset + pos * slope + noise
    return betas


def noise_ceiling(betas: np.ndarray, image: np.ndarray, split: np.ndarray, repeats: int = 3) -> np.ndarray:
    """Single-trial noise ceiling per voxel from test images seen ``repeats`` times (NSD's ncsnr method).

    noise var = mean over images of the variance across repeats; signal var = total var − noise var;
    NC = ncsnr² / (ncsnr² + 1) with ncsnr = √signal / √noise (clipped at 0).
    """
    test = split == "test"
    ids, counts = np.unique(image[test], return_counts=True)
    full = ids[counts == repeats]
    if len(full) < 2:
        raise ValueError(f"need at least 2 test images seen {repeats} times, got {len(full)}")
    groups = np.stack([betas[np.flatnonzero(test & (image == i))[:repeats]] for i in full])  # (images, R, V)
    noise = groups.var(axis=1, ddof=1).mean(axis=0)
    total = groups.reshape(-1, groups.shape[-1]).var(axis=0, ddof=1)
    signal = np.maximum(total - noise, 0)
    snr2 = signal / np.maximum(noise, 1e-12)
    return snr2 / (snr2 + 1)
