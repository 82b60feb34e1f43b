"""Small-data scoring at the stimulus' own size and mode, with the trivial baselines computed here (issue 17).

The small-data fMRI papers score whole images at their own resolution: Pearson r and MSE over all pixels, and
SSIM as the mean of the whole SSIM map. Two SSIM conventions are reported, because both are in use:

- ``ssim_wang``: Gaussian window σ 1.5, population covariance (MATLAB's ``ssim`` and Wang et al. 2004):
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``;
- ``ssim_skimage``: scikit-image's defaults (7 × 7 uniform window, sample covariance), ``data_range=1``.

Pixels are in [0, 1]; greyscale stimuli ("stimulus_mode": "L") are scored in grey, RGB ones over all channels
(SSIM per channel, averaged). Reconstructions are brought to the stimulus by ``data.fit.to_stimulus``.

Baselines: **mean image** (every prediction is the mean training stimulus) and **pixel ridge** (voxels
z-scored on training trials, repeats averaged, then a ridge to the pixels with its penalty chosen by exact
leave-one-image-out error on the training images).
"""

from __future__ import annotations

import numpy as np

from ..data.fit import to_stimulus
from .metrics import pearson_rows

NATIVE_METRICS = {
    "pcc": True,
    "mse": False,
    "ssim_wang": True,
    "ssim_skimage": True,
}  # name → higher is better
RIDGE_ALPHAS = np.logspace(-1, 6, 15)


def as_float(images: np.ndarray, mode: str) -> np.ndarray:
    """uint8 stimuli (N, H, W, 3) or (N, H, W) → float64 in [0, 1], grey (N, H, W) for mode 'L'."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    if mode == "L" and x.ndim == 4:
        x = x[..., 0] if np.array_equal(x[..., 0], x[..., 1]) else x @ np.array([0.299, 0.587, 0.114])
    return x


def score_pairs(real: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image PCC, MSE and both whole-map SSIMs of float images in [0, 1] ((N, H, W) or (N, H, W, 3))."""
    from skimage.metrics import structural_similarity

    if real.shape != pred.shape:
        raise ValueError(f"shapes differ: {real.shape} vs {pred.shape}")
    n = len(real)
    channel = -1 if real.ndim == 4 else None
    wang = [
        structural_similarity(
            r,
            p,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=channel,
        )
        for r, p in zip(real, pred, strict=True)
    ]
    default = [
        structural_similarity(r, p, data_range=1.0, channel_axis=channel)
        for r, p in zip(real, pred, strict=True)
    ]
    return {
        "pcc": pearson_rows(real.reshape(n, -1), pred.reshape(n, -1)),
        "mse": ((real - pred) ** 2).reshape(n, -1).mean(1),
        "ssim_wang": np.asarray(wang),
        "ssim_skimage": np.asarray(default),
    }


def ridge_loo(x: np.ndarray, y: np.ndarray, alphas=RIDGE_ALPHAS) -> tuple[float, np.ndarray]:
    """Kernel-form ridge (x: n × V, y: n × P, both centred by the caller); the α with the least exact
    leave-one-out squared error, and the dual coefficients (n × P) for that α. LOO residual i = (y_i −
    ŷ_i) / (1 − H_ii)."""
    lam, u = np.linalg.eigh(x @ x.T)
    lam = np.clip(lam, 0, None)
    uty = u.T @ y
    best = (np.inf, None)
    for a in alphas:
        shrink = lam / (lam + a)
        fitted = u @ (shrink[:, None] * uty)
        h = (u * u) @ shrink
        err = float((((y - fitted) / (1 - h)[:, None]) ** 2).sum())
        if err < best[0]:
            best = (err, a)
    a = best[1]
    return float(a), u @ (uty / (lam + a)[:, None])


def pixel_ridge(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, float]:
    """Predict test pixels (float, clipped to [0, 1], shaped like one training image) from voxels."""
    shape = train_y.shape[1:]
    y = train_y.reshape(len(train_y), -1)
    xm, ym = train_x.mean(0), y.mean(0)
    alpha, dual = ridge_loo(train_x - xm, y - ym)
    pred = (test_x - xm) @ (train_x - xm).T @ dual + ym
    return np.clip(pred, 0, 1).reshape(len(test_x), *shape), alpha


def subject_arrays(ds, subject: str, repeats: int, order: str):
    """z-scored, repeat-averaged voxels of the training images and the test images, with
    their image indices."""
    from ..data import VoxelScaler
    from ..data.dataset import TestSet

    subj = ds.subject(subject)
    scaler = VoxelScaler.fit(subj, subj.train_rows())
    train_images = subj.train_images()
    groups = [subj.train_trials(int(i)) for i in train_images]
    train_x = np.stack([scaler.transform(subj.read(rows)).mean(0) for rows in groups])
    test: TestSet = subj.test_set(repeats, order)
    test_x = scaler.transform(subj.read(test.rows.reshape(-1))).reshape(*test.rows.shape, -1).mean(1)
    return train_x, train_images, test_x, test.images


def native_baselines(ds, subject: str, mode: str, repeats: int = 1, order: str = "first_seen") -> dict:
    """Mean-image and pixel-ridge predictions (float, native size and mode) for the subject's test images."""
    train_x, train_images, test_x, test_images = subject_arrays(ds, subject, repeats, order)
    train_y = as_float(ds.images.get(train_images), mode)
    ridge, alpha = pixel_ridge(train_x, train_y, test_x)
    mean = np.repeat(train_y.mean(0, keepdims=True), len(test_images), axis=0)
    return {"images": test_images, "mean_image": mean, "pixel_ridge": ridge, "ridge_alpha": alpha}


def summarize(values: dict[str, np.ndarray]) -> dict:
    return {
        k: {
            "mean": float(np.mean(v)),
            "sem": float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
        }
        for k, v in values.items()
    }


def score_folder(rec, ds, images=None) -> dict[str, np.ndarray]:
    """Per-image metrics of one reconstruction folder against its stimuli at their own size and mode (every
    repeat scored, then averaged per image)."""
    images = [int(i) for i in (rec.images if images is None else images)]
    mode = ds.meta.get("stimulus_mode", "RGB")
    size = tuple(ds.meta.get("stimulus_size") or ds.images.size)
    truth = as_float(ds.images.get(np.array(images, dtype=np.int64)), mode)
    per = [
        score_pairs(truth, as_float(to_stimulus(rec.load(images, r), size, mode), mode))
        for r in range(rec.repeats)
    ]
    return {k: np.mean([p[k] for p in per], axis=0) for k in NATIVE_METRICS}


def native_evaluation(
    recon_folders, ds, subject: str | None = None, repeats: int = 1, order: str = "first_seen"
) -> dict:
    """Score each reconstruction folder (every repeat, averaged per image) and, on the test set, both
    baselines on the same images. Folders of held-out training images (`decode --holdout`) are scored
    without baselines."""
    meta = ds.meta
    mode = meta.get("stimulus_mode", "RGB")
    size = tuple(meta.get("stimulus_size") or ds.images.size)
    subject = subject or (recon_folders[0].subject if recon_folders else None) or next(iter(ds.subjects))
    test_images = {int(i) for i in ds.subject(subject).test_set(repeats, order).images}
    common = (
        sorted(set.intersection(*[{int(i) for i in rec.images} for rec in recon_folders]))
        if recon_folders
        else sorted(test_images)
    )
    if not common:
        from ..errors import DataError

        raise DataError(
            "the reconstruction folders share no image",
            where=", ".join(str(r.path) for r in recon_folders),
            fix="evaluate folders of one image set together",
        )
    rows, alpha = [], None
    if set(common) <= test_images:
        base = native_baselines(ds, subject, mode, repeats, order)
        index = {int(im): i for i, im in enumerate(base["images"])}
        common = [int(i) for i in base["images"] if int(i) in set(common)]  # the test order
        sel = np.array([index[i] for i in common], dtype=np.int64)
        truth = as_float(ds.images.get(np.array(common, dtype=np.int64)), mode)
        alpha = base["ridge_alpha"]
        for name in ("mean_image", "pixel_ridge"):
            vals = score_pairs(truth, base[name][sel])
            rows.append(
                {
                    "method": name,
                    "setting": "baseline",
                    "values": summarize(vals),
                    "per_image": {k: v.tolist() for k, v in vals.items()},
                }
            )
    for rec in recon_folders:
        vals = score_folder(rec, ds, common)
        rows.append(
            {
                "method": rec.method,
                "setting": rec.setting,
                "values": summarize(vals),
                "per_image": {k: v.tolist() for k, v in vals.items()},
                "repeats": rec.repeats,
                "recon_dir": str(rec.path),
            }
        )
    return {
        "protocol": {
            "name": "native",
            "size": list(size),
            "mode": mode,
            "pixels": "[0, 1]",
            "repeats_scored": "all, averaged per image",
            "ssim_wang": "gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1",
            "ssim_skimage": "scikit-image defaults (win_size 7), data_range=1",
            "ridge_alpha": alpha,
            "baselines": "on the test set" if alpha is not None else "none: these are not test images",
        },
        "subject": subject,
        "images": common,
        "metrics": {k: {"higher_is_better": v} for k, v in NATIVE_METRICS.items()},
        "rows": rows,
    }
