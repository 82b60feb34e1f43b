"""Simulated fMRI responses to *any* images (not only the procedural scenes): one subject
of the in-silico NSD.

``simulate_responses(images, n_voxels, seed)`` draws a subject (V1–hV4 pRFs with filter-bank tuning, higher
areas tuned to the ventral network's attributes), calibrates its standardisation on these images, and measures
one trial per presentation with the simulator's NSD-like noise (per-voxel noise ceilings around the ROI
medians of ``presets.NOISE_CEILING``, session drift, shared noise). Used by benchmarks/own_data.py to stand in
for a user's small real data set without network.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .encoding import FIELD_DEG, EncodingModel
from .features import FilterBank
from .presets import ROI_NAMES
from .subjects import calibrate, draw_subject
from .ventral import Ventral

RESOLUTION = 64  # the filter bank's and the ventral network's input side


def simulate_responses(
    images: np.ndarray,
    order: np.ndarray,
    n_voxels: int = 2000,
    seed: int = 0,
    noise_factor: float = 1.0,
    sessions: int = 1,
) -> tuple[np.ndarray, EncodingModel]:
    """Betas (len(order), n_voxels) float32 for the trials showing ``images[order]`` (uint8 (N, H, W, 3), any
    size), in ``sessions`` equal sessions, and the subject's noiseless encoding model."""
    from skimage.transform import resize

    from .design import measure

    x = np.asarray(images)
    if x.shape[1:3] != (RESOLUTION, RESOLUTION):
        x = np.clip(
            np.rint(
                resize(
                    x, (len(x), RESOLUTION, RESOLUTION, 3), order=1, anti_aliasing=True, preserve_range=True
                )
            ),
            0,
            255,
        ).astype(np.uint8)
    rng = np.random.default_rng([seed, 17])
    bank, ventral = FilterBank(RESOLUTION), Ventral()
    channel_norm = bank.maps(x[:512]).mean(axis=(0, 2, 3))
    channel_norm = np.maximum(channel_norm, 1e-2 * channel_norm.max()).astype(
        np.float32
    )  # greyscale: colour channels are ~0
    params = draw_subject(rng, n_voxels)
    meta = {
        "subject": "subj01",
        "resolution": RESOLUTION,
        "field_deg": FIELD_DEG,
        "roi_names": list(ROI_NAMES),
        "noise_factor": noise_factor,
    }
    model = EncodingModel(params, meta, ventral, channel_norm)
    ret = model.retinotopic_drive(bank.maps(x))
    sem = model.semantic_drive(ventral.semantic(x))
    calibrate(params, ret, sem, rng, noise_factor)
    mu = model.combine(ret, sem)
    order = np.asarray(order, dtype=np.int64)
    session = 1 + (np.arange(len(order)) * sessions) // max(1, len(order))
    design = SimpleNamespace(image=order, session=session)
    betas = measure(rng, mu, design, {i: i for i in range(len(x))}, params["noise_sd"])
    return betas, model
