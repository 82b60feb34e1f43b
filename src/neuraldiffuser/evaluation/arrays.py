"""Scoring images held in memory with the protocol's model-free metrics (PixCorr, SSIM, repeat consistency).

The ``evaluate`` stage scores reconstruction folders with every metric whose weights are present; this is
the quick check for arrays in a notebook, on exactly the same formulas and resize chain.
"""

from __future__ import annotations

import numpy as np

from ..utils.validation import check_array, check_consistent_rows


def score_images(
    stimuli: np.ndarray, reconstructions: np.ndarray, antialias: bool = False
) -> dict[str, np.ndarray]:
    """Per-image PixCorr and SSIM of reconstructions against their stimuli.

    ``stimuli``: (n, H, W, 3) uint8; ``reconstructions``: (n, H', W', 3) uint8, or (n, R, H', W', 3) with R
    repeats each (then the scores are (n, R), and 'Repeat SSIM' (n,) is added). Sizes may differ: both sets go
    through the protocol's 256 → 425 px chain. Returns {'PixCorr': …, 'SSIM': …} float64.
    """
    from .metrics import pixcorr, repeat_consistency, ssim
    from .preprocess import grey, pixel_view, to_protocol

    real = check_array(stimuli, "stimuli", ndim=4, shape=(None, None, 3), dtype=None)
    pred = check_array(reconstructions, "reconstructions", ndim=(4, 5), shape=(None, None, 3), dtype=None)
    for name, x in (("stimuli", real), ("reconstructions", pred)):
        if x.dtype != np.uint8:
            from ..errors import DataError

            raise DataError(
                f"'{name}' must be uint8 images in 0…255, got dtype {x.dtype}",
                fix="convert with (x * 255).round().astype(np.uint8)",
            )
    check_consistent_rows(stimuli=real, reconstructions=pred)
    reps = pred[:, None] if pred.ndim == 4 else pred
    real256 = to_protocol(real, antialias)
    out: dict[str, list[np.ndarray]] = {"PixCorr": [], "SSIM": []}
    for r in range(reps.shape[1]):
        p256 = to_protocol(np.ascontiguousarray(reps[:, r]), antialias)
        out["PixCorr"].append(pixcorr(real256, p256, antialias))
        out["SSIM"].append(ssim(real256, p256, antialias))
    scores = {k: np.stack(v, axis=1) if pred.ndim == 5 else v[0] for k, v in out.items()}
    if pred.ndim == 5 and reps.shape[1] > 1:
        greys = np.stack(
            [
                grey(pixel_view(to_protocol(np.ascontiguousarray(reps[:, r]), antialias), antialias))
                for r in range(reps.shape[1])
            ],
            axis=0,
        )
        scores["Repeat SSIM"] = repeat_consistency(greys)
    return scores
