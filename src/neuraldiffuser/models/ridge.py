"""The closed-form ridge baseline: one linear map from voxels to each target, penalty chosen on
held-out training images.

With X centred (n × V) and its thin SVD X = U S Vᵀ, the ridge solution for penalty α is
W_α = V diag(s / (s² + α)) Uᵀ Y. The SVD is obtained once per fit from the eigendecomposition of
the smaller Gram matrix (X Xᵀ when n ≤ V, else Xᵀ X), so trying a grid of α costs one small matrix
product per α. Targets are processed in column chunks to bound memory at paper scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, ModelLoadError
from ..utils.io import atomic_dir, atomic_write_json

CHUNK = 8192


def thin_svd(x: torch.Tensor, rtol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U, s, V) of a centred matrix via the eigendecomposition of its smaller Gram; tiny singular values dropped."""
    n, v = x.shape
    if n <= v:
        lam, u = torch.linalg.eigh(x @ x.T)
        keep = lam > rtol * lam.max().clamp_min(1e-300)
        u, s = u[:, keep], lam[keep].sqrt()
        vmat = (x.T @ u) / s
    else:
        lam, vmat = torch.linalg.eigh(x.T @ x)
        keep = lam > rtol * lam.max().clamp_min(1e-300)
        vmat, s = vmat[:, keep], lam[keep].sqrt()
        u = (x @ vmat) / s
    return u, s, vmat


def split_by_image(images: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (fit, val) masks over trials: all trials of a held-out image go to validation."""
    uniq = np.unique(images)
    if len(uniq) < 4:
        raise DataError(f"ridge needs at least 4 training images to hold some out, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(fraction * len(uniq))))
    val_images = rng.choice(uniq, size=n_val, replace=False)
    val = np.isin(images, val_images)
    return ~val, val


class RidgeDecoder:
    """``fit(X, {name: Y}, images)`` then ``predict(X)``; saved as ridge.safetensors + ridge.json."""

    def __init__(self, alphas: list[float], val_fraction: float = 0.1, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64):
        self.alphas = [float(a) for a in alphas]
        self.val_fraction, self.seed, self.device, self.dtype = val_fraction, seed, device, dtype
        self.weights: dict[str, np.ndarray] = {}
        self.x_mean: np.ndarray | None = None
        self.y_mean: dict[str, np.ndarray] = {}
        self.shapes: dict[str, list[int]] = {}
        self.chosen: dict[str, float] = {}
        self.val_scores: dict[str, list[float]] = {}

    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), device=self.device).to(self.dtype)

    def select(self, x: np.ndarray, ys: dict[str, np.ndarray], images: np.ndarray) -> dict[str, float]:
        """Pick α per target by mean squared error on held-out training images (no test data involved)."""
        fit, val = split_by_image(images, self.val_fraction, self.seed)
        xf = self._t(x[fit])
        mu = xf.mean(0)
        u, s, v = thin_svd(xf - mu)
        a = (self._t(x[val]) - mu) @ v
        for name, y in ys.items():
            y2 = y.reshape(len(y), -1)
            err = np.zeros(len(self.alphas))
            for c0 in range(0, y2.shape[1], CHUNK):
                yf = self._t(y2[fit, c0 : c0 + CHUNK])
                ym = yf.mean(0)
                b = u.T @ (yf - ym)
                yv = self._t(y2[val, c0 : c0 + CHUNK])
                for i, alpha in enumerate(self.alphas):
                    pred = (a * (s / (s**2 + alpha))) @ b + ym
                    err[i] += float(((pred - yv) ** 2).sum())
            err /= y2[val].size
            self.val_scores[name] = err.tolist()
            self.chosen[name] = self.alphas[int(np.argmin(err))]
        return dict(self.chosen)

    def fit(self, x: np.ndarray, ys: dict[str, np.ndarray], images: np.ndarray | None = None) -> RidgeDecoder:
        """Choose α on held-out images (when ``images`` is given and no α is chosen yet), then refit on all rows."""
        if images is not None and not self.chosen:
            self.select(x, ys, images)
        xt = self._t(x)
        mu = xt.mean(0)
        u, s, v = thin_svd(xt - mu)
        self.x_mean = mu.cpu().numpy().astype(np.float32)
        for name, y in ys.items():
            alpha = self.chosen.get(name, self.alphas[0])
            y2 = y.reshape(len(y), -1)
            parts, means = [], []
            for c0 in range(0, y2.shape[1], CHUNK):
                yc = self._t(y2[:, c0 : c0 + CHUNK])
                ym = yc.mean(0)
                parts.append(((v * (s / (s**2 + alpha))) @ (u.T @ (yc - ym))).cpu().numpy().astype(np.float32))
                means.append(ym.cpu().numpy().astype(np.float32))
            self.weights[name] = np.concatenate(parts, axis=1)
            self.y_mean[name] = np.concatenate(means)
            self.shapes[name] = list(y.shape[1:])
        return self

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.x_mean is None:
            raise ModelLoadError("ridge decoder is not fitted")
        if x.shape[-1] != self.x_mean.shape[0]:
            raise DataError(f"ridge was fit on {self.x_mean.shape[0]} voxels, got {x.shape[-1]}")
        xc = (x - self.x_mean).astype(np.float32)
        return {n: (xc @ w + self.y_mean[n]).reshape(len(x), *self.shapes[n]) for n, w in self.weights.items()}

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        tensors = {"x_mean": self.x_mean}
        for n in self.weights:
            tensors[f"{n}.weight"], tensors[f"{n}.mean"] = self.weights[n], self.y_mean[n]
        with atomic_dir(path) as tmp:
            save_file(tensors, str(tmp / "ridge.safetensors"))
            atomic_write_json(tmp / "ridge.json", {"alphas": self.alphas, "chosen": self.chosen, "val_mse": self.val_scores, "shapes": self.shapes, "val_fraction": self.val_fraction, "seed": self.seed})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> RidgeDecoder:
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / "ridge.json").is_file():
            raise ModelLoadError("no ridge.json", where=str(path), fix="train with train.ridge: true first")
        meta = json.loads((path / "ridge.json").read_text())
        tensors = load_file(str(path / "ridge.safetensors"))
        r = cls(meta["alphas"], meta["val_fraction"], meta["seed"])
        r.chosen, r.val_scores, r.shapes, r.x_mean = meta["chosen"], meta["val_mse"], meta["shapes"], tensors["x_mean"]
        for n in r.shapes:
            r.weights[n], r.y_mean[n] = tensors[f"{n}.weight"], tensors[f"{n}.mean"]
        return r
