"""The closed-form ridge baseline: one linear map from voxels to each target, penalty chosen on
held-out training images.

With X centred (n × V) and its thin SVD X = U S Vᵀ, the ridge solution for penalty α is
W_α = V diag(s / (s² + α)) Uᵀ Y. The SVD comes once per fit from the eigendecomposition of the
smaller Gram matrix (X Xᵀ when n ≤ V, else Xᵀ X), so a grid of α costs one small product per α.
The weights are kept factored, W = V · B with B = diag(s / (s² + α)) Uᵀ Y (k × d), which saves the
V × k × d product of forming W. Targets are processed in column chunks to bound memory, and α is
chosen on a fixed random subset of each target's columns (the choice needs no more): on a random tenth of the
training images (``cv='holdout'``), or by the exact leave-one-out error over every row (``cv='loo'``, for
small sets where a tenth is a handful of images): residual_i / (1 − H_ii), H = 11ᵀ/n + U
diag(s² / (s² + α)) Uᵀ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError, ModelLoadError
from ..utils.io import atomic_dir, atomic_write_json
from ..utils.validation import check_array, check_consistent_rows, check_is_fitted, check_positive

CHUNK = 8192
DEFAULT_ALPHAS = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6)
SINGLE = "y"  # the key an array target (rather than a dict of them) is kept under


def thin_svd(x: torch.Tensor, rtol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U, s, V) of a centred matrix via the eigendecomposition of its smaller Gram; tiny
    singular values dropped."""
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
    """Boolean (fit, val) masks over rows: all rows of a held-out image go to validation."""
    uniq = np.unique(images)
    if len(uniq) < 4:
        raise DataError(f"ridge needs at least 4 training images to hold some out, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(fraction * len(uniq))))
    val = np.isin(images, rng.choice(uniq, size=n_val, replace=False))
    return ~val, val


def average_by_image(x: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of each image (repeats of a training image averaged, as for test images)."""
    uniq, inverse = np.unique(images, return_inverse=True)
    out = np.zeros((len(uniq), x.shape[1]), dtype=np.float64)
    np.add.at(out, inverse, x)
    return (out / np.bincount(inverse)[:, None]).astype(np.float32), uniq


class RidgeDecoder:
    """Ridge from voxels to targets, scikit-learn style; saved as ridge.safetensors + ridge.json.

    ``fit(X, Y)``: X (n_trials, n_voxels) float, z-scored betas; Y (n_trials, ...) float, one array
    (``predict`` then returns one (n, ...) float32 array) or a dict {name: array} (``predict`` returns a
    dict). With several ``alphas`` the penalty is chosen per target by the mean squared error on held-out
    images (``images``: the image index of each row, so repeats of an image stay together; default: each
    row its own image), then the model is refit on every row. ``cv='loo'`` holds out each row in turn (exact,
    from the same decomposition) and needs one row per image.
    """

    def __init__(
        self,
        alphas: float | list[float] = DEFAULT_ALPHAS,
        val_fraction: float = 0.1,
        seed: int = 0,
        select_columns: int = 2048,
        device: str = "cpu",
        cv: str = "holdout",
    ):
        alphas = [alphas] if np.isscalar(alphas) else list(alphas)
        if not alphas:
            raise ConfigError("'alphas' is empty", fix="give at least one ridge penalty")
        self.alphas = [check_positive(a, "alphas") for a in alphas]
        if not 0 < val_fraction < 1:
            raise ConfigError(f"'val_fraction' must lie in (0, 1), got {val_fraction!r}")
        if cv not in ("holdout", "loo"):
            raise ConfigError(f"'cv' must be 'holdout' or 'loo', got {cv!r}")
        self.cv = cv
        self.val_fraction, self.seed, self.select_columns, self.device = (
            val_fraction,
            seed,
            int(select_columns),
            device,
        )
        self.basis: np.ndarray | None = None  # V (voxels × k), shared by every target
        self.coef: dict[str, np.ndarray] = {}  # B (k × d) per target
        self.x_mean: np.ndarray | None = None
        self.y_mean: dict[str, np.ndarray] = {}
        self.shapes: dict[str, list[int]] = {}
        self.chosen: dict[str, float] = {}
        self.val_scores: dict[str, list[float]] = {}
        self.single = False  # fitted on one array, not a dict: predict returns an array

    def _t(self, a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), device=self.device).to(dtype)

    def _svd(self, x: np.ndarray):
        """Centre, decompose in float64, continue in float32 (the products dominate; their rounding
        does not matter)."""
        xt = self._t(x, torch.float64)
        mu = xt.mean(0)
        u, s, v = thin_svd(xt - mu)
        return mu.float(), u.float(), s.float(), v.float()

    def _columns(self, y: np.ndarray, rng) -> np.ndarray:
        y2 = y.reshape(len(y), -1)
        return y2[
            :, np.sort(rng.choice(y2.shape[1], size=min(self.select_columns, y2.shape[1]), replace=False))
        ]

    def select_loo(self, x: np.ndarray, ys: dict[str, np.ndarray], images: np.ndarray) -> dict[str, float]:
        """Pick α per target by the exact leave-one-out squared error over all rows (one row per image)."""
        if len(np.unique(images)) != len(images):
            raise ConfigError(
                "ridge cv='loo' needs one row per image (repeats averaged); these rows repeat images",
                fix="set train.ridge_average_repeats: true, or train.ridge_cv: holdout",
            )
        _, u, s, _ = self._svd(x)
        rng = np.random.default_rng(self.seed)
        for name, y in ys.items():
            yc = self._t(self._columns(y, rng))
            yc = yc - yc.mean(0)
            uty = u.T @ yc
            err = []
            for alpha in self.alphas:
                shrink = s**2 / (s**2 + alpha)
                h = 1.0 / len(x) + (u * u) @ shrink
                resid = (yc - u @ (shrink[:, None] * uty)) / (1 - h)[:, None]
                err.append(float((resid**2).mean()))
            self.val_scores[name] = err
            self.chosen[name] = self.alphas[int(np.argmin(err))]
        return dict(self.chosen)

    def select(self, x: np.ndarray, ys: dict[str, np.ndarray], images: np.ndarray) -> dict[str, float]:
        """Pick α per target by mean squared error on held-out training images (no test data involved)."""
        if self.cv == "loo":
            return self.select_loo(x, ys, images)
        fit, val = split_by_image(images, self.val_fraction, self.seed)
        mu, u, s, v = self._svd(x[fit])
        a = (self._t(x[val]) - mu) @ v
        rng = np.random.default_rng(self.seed)
        for name, y in ys.items():
            y2 = y.reshape(len(y), -1)
            cols = np.sort(rng.choice(y2.shape[1], size=min(self.select_columns, y2.shape[1]), replace=False))
            yf, yv = self._t(y2[fit][:, cols]), self._t(y2[val][:, cols])
            ym = yf.mean(0)
            b = u.T @ (yf - ym)
            err = [float((((a * (s / (s**2 + alpha))) @ b + ym - yv) ** 2).mean()) for alpha in self.alphas]
            self.val_scores[name] = err
            self.chosen[name] = self.alphas[int(np.argmin(err))]
        return dict(self.chosen)

    def fit(
        self, x: np.ndarray, ys: np.ndarray | dict[str, np.ndarray], images: np.ndarray | None = None
    ) -> RidgeDecoder:
        """Choose α on held-out images (several alphas and none chosen yet), then refit on all
        rows; returns self."""
        x, ys, images = self._check_fit(x, ys, images)
        if len(self.alphas) > 1 and not self.chosen:
            self.select(x, ys, np.arange(len(x)) if images is None else images)
        mu, u, s, v = self._svd(x)
        self.x_mean, self.basis = mu.cpu().numpy(), v.cpu().numpy()
        for name, y in ys.items():
            alpha = self.chosen.get(name, self.alphas[0])
            y2 = y.reshape(len(y), -1)
            parts, means = [], []
            for c0 in range(0, y2.shape[1], CHUNK):
                yc = self._t(y2[:, c0 : c0 + CHUNK])
                ym = yc.mean(0)
                parts.append(((s / (s**2 + alpha))[:, None] * (u.T @ (yc - ym))).cpu().numpy())
                means.append(ym.cpu().numpy())
            self.coef[name], self.y_mean[name] = np.concatenate(parts, axis=1), np.concatenate(means)
            self.shapes[name] = list(y.shape[1:])
        return self

    def _check_fit(self, x, ys, images):
        self.single = not isinstance(ys, dict)
        ys = {SINGLE: ys} if self.single else ys
        x = check_array(x, "X", ndim=2, min_rows=2, dtype=None)
        ys = {
            n: check_array(y, "Y" if self.single else f"Y['{n}']", min_rows=2, dtype=None)
            for n, y in ys.items()
        }
        if images is not None:
            images = check_array(images, "images", ndim=1, dtype=np.int64, integer=True)
        check_consistent_rows(
            X=x, images=images, **{("Y" if self.single else f"Y['{n}']"): y for n, y in ys.items()}
        )
        return x, ys, images

    def weights(self, name: str = SINGLE) -> np.ndarray:
        """The full (voxels × d) weight matrix of one target (for inspection; prediction uses the factors)."""
        return self.basis @ self.coef[name]

    def predict(self, x: np.ndarray, targets: list[str] | None = None) -> np.ndarray | dict[str, np.ndarray]:
        """X (n, n_voxels) → predictions (n, ...) float32: one array, or a dict if fitted on a dict
        (only the keys in ``targets`` when given)."""
        check_is_fitted(self, "x_mean")
        x = check_array(x, "X", ndim=2)
        if x.shape[-1] != self.x_mean.shape[0]:
            raise DataError(
                f"'X' has {x.shape[-1]} voxels (columns), the ridge was fit on {self.x_mean.shape[0]}"
            )
        h = (x - self.x_mean).astype(np.float32) @ self.basis
        out = {
            n: (h @ b + self.y_mean[n]).reshape(len(x), *self.shapes[n])
            for n, b in self.coef.items()
            if targets is None or n in targets
        }
        return out[SINGLE] if self.single else out

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        tensors = {"x_mean": self.x_mean, "basis": self.basis}
        for n in self.coef:
            tensors[f"{n}.coef"], tensors[f"{n}.mean"] = self.coef[n], self.y_mean[n]
        meta = {
            "alphas": self.alphas,
            "chosen": self.chosen,
            "val_mse": self.val_scores,
            "shapes": self.shapes,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "select_columns": self.select_columns,
            "single": self.single,
            "cv": self.cv,
        }
        with atomic_dir(path) as tmp:
            save_file(tensors, str(tmp / "ridge.safetensors"))
            atomic_write_json(tmp / "ridge.json", meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> RidgeDecoder:
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / "ridge.json").is_file():
            raise ModelLoadError("no ridge.json", where=str(path), fix="train with train.ridge: true first")
        meta = json.loads((path / "ridge.json").read_text())
        tensors = load_file(str(path / "ridge.safetensors"))
        r = cls(
            meta["alphas"],
            meta["val_fraction"],
            meta["seed"],
            meta.get("select_columns", 2048),
            cv=meta.get("cv", "holdout"),
        )
        r.chosen, r.val_scores, r.shapes = meta["chosen"], meta["val_mse"], meta["shapes"]
        r.x_mean, r.basis, r.single = tensors["x_mean"], tensors["basis"], bool(meta.get("single", False))
        for n in r.shapes:
            r.coef[n], r.y_mean[n] = tensors[f"{n}.coef"], tensors[f"{n}.mean"]
        return r
