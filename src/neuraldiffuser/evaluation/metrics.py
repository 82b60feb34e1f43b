"""The metric formulas of MindEye2's ``final_evaluations`` (method notes §6.1), model-free.

Every function returns per-image values; the reported score is their mean. Inputs are the
256² protocol tensors (``preprocess.to_protocol``) or feature matrices (N, D).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from .preprocess import grey, pixel_view


def _standardize(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm, in float64 (so a dot product is Pearson's r)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / np.sqrt((x * x).sum(axis=1, keepdims=True))


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r(a_i, b_i) for each row pair: what ``np.corrcoef(a_i, b_i)[0, 1]`` gives, vectorised."""
    from ..utils.validation import check_consistent_rows

    check_consistent_rows(a=a, b=b)
    with np.errstate(invalid="ignore"):
        return np.clip((_standardize(a) * _standardize(b)).sum(axis=1), -1.0, 1.0)


def pixcorr(real256: torch.Tensor, pred256: torch.Tensor, antialias: bool = False) -> np.ndarray:
    """PixCorr: Pearson r of the flattened RGB pixels at 425² (bilinear), per image."""
    real = pixel_view(real256, antialias).reshape(len(real256), -1).cpu().numpy()
    pred = pixel_view(pred256, antialias).reshape(len(pred256), -1).cpu().numpy()
    return pearson_rows(real, pred)


def ssim_grey(real: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """SSIM of grey image pairs with the reference's arguments (Gaussian σ=1.5, population covariance).

    ``real``, ``pred``: (n, H, W) float grey images in [0, 1] (``preprocess.grey`` of RGB ones)."""
    from skimage.metrics import structural_similarity

    from ..utils.validation import check_array, check_consistent_rows

    for name, x in (("real", real), ("pred", pred)):
        if np.ndim(x) == 4 and np.shape(x)[-1] == 3:
            from ..errors import DataError

            raise DataError(
                f"'{name}' holds RGB images {np.shape(x)}; ssim_grey takes grey (n, H, W)",
                fix="convert with evaluation.preprocess.grey, or call ssim()",
            )
    real = check_array(
        real, "real", ndim=3, dtype=None, value_range=(-1e-3, 1.001)
    )  # float rounding of a resize may overshoot 1 slightly
    pred = check_array(
        pred, "pred", ndim=3, dtype=None, value_range=(-1e-3, 1.001)
    )  # float rounding of a resize may overshoot 1 slightly
    check_consistent_rows(real=real, pred=pred)
    if real.shape != pred.shape:
        from ..errors import DataError

        raise DataError(f"'real' {real.shape} and 'pred' {pred.shape} differ in image size")

    return np.array(
        [
            structural_similarity(
                p, r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for r, p in zip(real, pred, strict=True)
        ],
        dtype=np.float64,
    )


def ssim(real256: torch.Tensor, pred256: torch.Tensor, antialias: bool = False) -> np.ndarray:
    """SSIM: 425² bilinear, ``rgb2gray``, then ``structural_similarity`` per image."""
    return ssim_grey(grey(pixel_view(real256, antialias)), grey(pixel_view(pred256, antialias)))


def corr_block(real: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """r[i, j] = corr(real_i, pred_j): the real-vs-pred block of ``np.corrcoef(real, pred)``."""
    with np.errstate(invalid="ignore"):
        return np.clip(_standardize(real) @ _standardize(pred).T, -1.0, 1.0)


def two_way_identification(real: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per reconstruction j: #{i ≠ j : r[i, j] < r[j, j]} / (N − 1). The mean is the 2-way score.

    A tie counts as a failure (strict ``<``), and a NaN correlation (a constant feature row) never
    succeeds, exactly as the reference's ``r < congruents`` does.
    """
    n = len(real)
    if n != len(pred):
        raise ValueError(f"{n} real vs {len(pred)} reconstructed feature rows")
    if n < 2:
        raise ValueError("two-way identification needs at least 2 images")
    r = corr_block(real, pred)
    congruent = np.diag(r)
    with np.errstate(invalid="ignore"):
        success = (r < congruent[None, :]).sum(axis=0)
    return success / (n - 1)


def correlation_distance(real: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``scipy.spatial.distance.correlation(real_i, pred_i)`` = 1 − Pearson r, per image."""
    return 1.0 - pearson_rows(real, pred)


def repeat_consistency(greys: np.ndarray) -> np.ndarray:
    """Mean SSIM over all pairs of an image's repeats; ``greys`` is (R, n, H, W) at 425², grey."""
    reps = len(greys)
    if reps < 2:
        raise ValueError("repeat consistency needs at least 2 repeats")
    pairs = list(itertools.combinations(range(reps), 2))
    return np.mean([ssim_grey(greys[a], greys[b]) for a, b in pairs], axis=0)


def _mean_ci(values: np.ndarray) -> tuple[float, list[float]]:
    """Mean and normal 95% CI with the population SD / √n, as the reference computes it."""
    from scipy import stats

    mean = float(np.mean(values))
    se = float(np.std(values) / np.sqrt(len(values)))
    if se == 0.0:
        return mean, [mean, mean]
    lo, hi = stats.norm.interval(0.95, loc=mean, scale=se)
    return mean, [float(lo), float(hi)]


def retrieval(
    brain: np.ndarray, image: np.ndarray, draws: int = 30, subset: int = 300, seed: int = 42
) -> dict:
    """Top-1 retrieval on cosine similarity of flattened, L2-normalised embeddings in random subsets.

    forward: for each brain embedding, is its own image the most similar of the subset (brain → image);
    backward: for each image embedding, is its own brain embedding the most similar (image → brain).
    """
    if len(brain) != len(image):
        raise ValueError(f"{len(brain)} brain vs {len(image)} image embeddings")
    n = len(brain)
    size = min(subset, n)
    b = np.asarray(brain, dtype=np.float64).reshape(n, -1)
    im = np.asarray(image, dtype=np.float64).reshape(n, -1)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    im /= np.linalg.norm(im, axis=1, keepdims=True)
    rng = np.random.RandomState(seed)
    fwd, bwd = [], []
    labels = np.arange(size)
    for _ in range(draws):
        idx = rng.choice(n, size=size, replace=False)
        sim = b[idx] @ im[idx].T
        fwd.append(np.mean(sim.argmax(axis=1) == labels))
        bwd.append(np.mean(sim.argmax(axis=0) == labels))
    fwd_mean, fwd_ci = _mean_ci(np.array(fwd))
    bwd_mean, bwd_ci = _mean_ci(np.array(bwd))
    return {
        "forward": fwd_mean,
        "forward_ci95": fwd_ci,
        "backward": bwd_mean,
        "backward_ci95": bwd_ci,
        "draws": draws,
        "subset": size,
        "n": n,
        "seed": seed,
        "forward_per_draw": [float(v) for v in fwd],
        "backward_per_draw": [float(v) for v in bwd],
    }
