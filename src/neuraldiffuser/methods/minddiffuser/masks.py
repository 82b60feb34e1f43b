"""The "remain rate" feature masks: which g features MindDiffuser decodes and puts into its stage-2 loss.

Each feature of a guidance layer is scored by how well the fMRI predicts it on training data only:
K-fold cross-validation without shuffling (the reference's KFold(5)), a decoder fit on K−1 folds,
|Pearson r| between its predictions and the truth on the held-out fold, averaged over the folds. The
features at or above the (100 − remain_rate) percentile are kept (25% → 9,600 of ViT-B/32's 38,400).

Substitution: the reference scores with himalaya's SparseGroupLassoCV on a GPU; we score with the same
voxel-selection ridge that then decodes the kept features, so a feature is kept when the decoder that
will predict it predicts it well (docs/methods.md).
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from .ridge import VoxelSelectionRidge, unit_columns


def kfold_slices(n: int, folds: int) -> list[slice]:
    """Consecutive folds of sizes n//K + 1 (the first n % K) and n//K (the rest), as sklearn's KFold."""
    if n < folds:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {folds} training images, got {n}",
            where="minddiffuser.mask_folds",
        )
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def column_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching columns of a and b (n, P) → (P,); 0 where either column is constant."""
    import torch

    ua, ub = unit_columns(torch.from_numpy(a).double()), unit_columns(torch.from_numpy(b).double())
    return (ua * ub).sum(0).numpy()


def predictability(
    x: np.ndarray,
    y: np.ndarray,
    n_feat: int,
    alpha: float,
    folds: int = 5,
    memory_mb: int = 1024,
    device: str = "cpu",
) -> np.ndarray:
    """Mean over folds of |r| between held-out predictions and truth, per column of y (n, P)."""
    scores = np.zeros(y.shape[1])
    for test in kfold_slices(len(x), folds):
        train = np.ones(len(x), dtype=bool)
        train[test] = False
        model = VoxelSelectionRidge(n_feat, alpha, memory_mb, device).fit(x[train], y[train])
        scores += np.abs(
            column_correlation(model.predict(x[test]).astype(np.float64), y[test].astype(np.float64))
        )
    return scores / folds


def remain_mask(scores: np.ndarray, remain_rate: float) -> np.ndarray:
    """Boolean mask of the features scoring at or above the (100 − remain_rate) percentile."""
    if not 0 < remain_rate <= 100:
        raise DataError(
            f"remain_rate must be in (0, 100], got {remain_rate}", where="minddiffuser.remain_rate"
        )
    return scores >= np.percentile(scores, 100.0 - remain_rate)
