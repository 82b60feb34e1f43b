"""Fitting the ridge baseline on the target subject's training trials (the same rows the decoders use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config.schema import Config
from ..targets.store import TargetStore
from .batches import Pool


def fit_ridge(config: Config, pool: Pool, store: TargetStore, heads: dict, out: Path):
    """Closed-form ridge per head with α chosen on held-out training images; saved to ``out``."""
    from ..models.ridge import RidgeDecoder
    from ..utils.progress import track

    x = pool.scaler.transform(pool.subject.read(pool.rows))
    ys = {}
    for h, (key, layer) in track(list(heads.items()), "ridge targets"):
        data = store.get_images(key, pool.images)
        ys[h] = data if layer is None else data[:, layer]
    ridge = RidgeDecoder(config.train.ridge_alphas, config.train.ridge_val_fraction, seed=config.seed)
    ridge.fit(x, ys, images=np.asarray(pool.images))
    return ridge.save(out)
