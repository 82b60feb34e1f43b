"""Fitting the ridge baseline on the target subject's training trials (the same rows the decoders use)."""

from __future__ import annotations

from pathlib import Path

from ..config.schema import Config
from .batches import TrainingData


def fit_ridge(config: Config, data: TrainingData, out: Path):
    """Closed-form ridge per head of ``data`` (one pool: the target subject), α chosen on held-out training
    images; with ``train.ridge_average_repeats`` the repeats of each training image are averaged first."""
    from ..models.ridge import RidgeDecoder, average_by_image

    (pool,) = data.pools
    x = pool.voxels if pool.voxels is not None else pool.scaler.transform(pool.subject.read(pool.rows))
    images = pool.images
    if config.train.ridge_average_repeats:
        x, images = average_by_image(x, images)
    ys = data.targets_of(images)
    import torch

    device = "cuda" if torch.cuda.is_available() and not config.train.cpu else "cpu"
    ridge = RidgeDecoder(
        config.train.ridge_alphas,
        config.train.ridge_val_fraction,
        seed=config.seed,
        device=device,
        cv=config.train.ridge_cv,
    )
    ridge.fit(x, ys, images=images)
    return ridge.save(out)
