"""A subject's noiseless encoding model: images → voxel responses, saved with the dataset.

Every voxel's response to an image is

    ret  = (Σ_f w_f · Σ_p G(p; x, y, σ) · M_f(p) / norm_f) ** n          (pRF × filter bank, CSS exponent n)
    sem  = (s(image) − 0.5) · u                                          (semantic space s, weights u)
    μ    = z( √α · z(ret) + √(1 − α) · z(sem) )                          (α = 1 for V1–hV4)
    beta = baseline + gain · μ   (+ session drift + trial noise in the data; not here)

where M_f are the filter bank's maps (``features.py``), G a Gaussian pRF integrated over the map's
grid cells, s the ventral network's attribute read-out (``ventral.py``) and z(·) a standardisation
whose mean and SD were measured once, on the subject's own stimuli, and stored. ``predict`` therefore
returns exactly the noiseless part of the betas written to disk, in the same units.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from ..errors import DataError
from .features import FilterBank

FIELD_DEG = 8.4  # NSD's stimuli subtend 8.4° of visual angle (Allen et al. 2022)
SUBJECT_ARRAYS = (
    "roi",
    "prf_x",
    "prf_y",
    "prf_sigma",
    "exponent",
    "tuning",
    "semantic_weights",
    "mix",
    "ret_mean",
    "ret_std",
    "sem_mean",
    "sem_std",
    "mu_mean",
    "mu_std",
    "baseline",
    "gain",
    "noise_sd",
    "target_nc",
)


def prf_weights(x_deg, y_deg, sigma_deg, grid: int, field_deg: float = FIELD_DEG) -> np.ndarray:
    """(V, grid*grid) Gaussian pRFs integrated over each grid cell (exact for pRFs smaller than a cell).

    Coordinates are degrees from fixation with y up; grid rows run from the top of the image down.
    Weights are not renormalised, so a pRF partly outside the image sees less of it, as in the scanner.
    """
    edges = np.linspace(-field_deg / 2, field_deg / 2, grid + 1)
    s = np.asarray(sigma_deg, dtype=np.float64)[:, None]
    cx = ndtr((edges[None, 1:] - np.asarray(x_deg)[:, None]) / s) - ndtr(
        (edges[None, :-1] - np.asarray(x_deg)[:, None]) / s
    )
    top_down = edges[::-1]
    cy = ndtr((top_down[None, :-1] - np.asarray(y_deg)[:, None]) / s) - ndtr(
        (top_down[None, 1:] - np.asarray(y_deg)[:, None]) / s
    )
    w = (cy[:, :, None] * cx[:, None, :]).reshape(len(s), -1)
    w[w < 1e-9] = 0.0  # far tails: they would be float32 denormals, which make the matmul ~10x slower
    return w.astype(np.float32)


class EncodingModel:
    """``predict(images) -> (n, voxels)`` noiseless responses; ``roi`` holds each voxel's ROI label."""

    def __init__(
        self, params: dict[str, np.ndarray], meta: dict, ventral, channel_norm: np.ndarray, units=None
    ):
        self.params, self.meta, self.ventral = params, meta, ventral
        self.channel_norm = np.asarray(channel_norm, dtype=np.float32)
        self.resolution = int(meta["resolution"])
        self.field_deg = float(meta.get("field_deg", FIELD_DEG))
        self.roi_names = list(meta["roi_names"])
        self.roi = np.asarray(self.roi_names, dtype=object)[params["roi"].astype(int)]
        self.n_voxels = len(self.roi)
        self.units = (
            units  # optional (mean, std) per voxel: MindEye2-layout betas are z-scored on training trials
        )
        self._bank = FilterBank(self.resolution)
        self._prf = None

    def __repr__(self) -> str:
        return (
            f"EncodingModel({self.meta.get('subject')}, voxels={self.n_voxels}, resolution={self.resolution})"
        )

    # ---------------------------------------------------------------- the model

    def prf_matrix(self) -> np.ndarray:
        if self._prf is None:
            p = self.params
            self._prf = prf_weights(p["prf_x"], p["prf_y"], p["prf_sigma"], self._bank.grid, self.field_deg)
        return self._prf

    def retinotopic_drive(self, maps: np.ndarray) -> np.ndarray:
        """(n, V) compressive pRF responses to filter-bank maps (before standardisation)."""
        n, f = maps.shape[:2]
        pooled = (maps.reshape(n * f, -1) @ self.prf_matrix().T).reshape(n, f, -1)  # (n, F, V)
        weights = (self.params["tuning"] / self.channel_norm[None, :]).T  # (F, V)
        drive = np.einsum("nfv,fv->nv", pooled, weights, optimize=True)
        return np.maximum(drive, 0) ** self.params["exponent"][None, :]

    def semantic_drive(self, semantic: np.ndarray) -> np.ndarray:
        """(n, V) responses to the semantic space (before standardisation)."""
        return (semantic - 0.5) @ self.params["semantic_weights"].T

    def combine(self, ret: np.ndarray, sem: np.ndarray) -> np.ndarray:
        """Standardise, mix and scale the two parts into betas units (noiseless)."""
        p = self.params
        z_ret = (ret - p["ret_mean"]) / p["ret_std"]
        z_sem = (sem - p["sem_mean"]) / p["sem_std"]
        mu = np.sqrt(p["mix"]) * z_ret + np.sqrt(1 - p["mix"]) * z_sem
        out = p["baseline"] + p["gain"] * (mu - p["mu_mean"]) / p["mu_std"]
        if self.units is not None:
            out = (out - self.units[0]) / self.units[1]
        return out.astype(np.float32)

    def parts(self, images: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Retinotopic and semantic drives of uint8 images at the model's resolution."""
        ret, sem = [], []
        for start in range(0, len(images), chunk):
            part = images[start : start + chunk]
            ret.append(self.retinotopic_drive(self._bank.maps(part)))
            sem.append(self.semantic_drive(self.ventral.semantic(part)))
        return np.concatenate(ret), np.concatenate(sem)

    def predict(self, images: np.ndarray, chunk: int = 256) -> np.ndarray:
        """(n, voxels) float32 noiseless responses to uint8 (n, H, W, 3) images (resized if H, W differ)."""
        images = self._check_images(images)
        if len(images) == 0:
            return np.zeros((0, self.n_voxels), dtype=np.float32)
        ret, sem = self.parts(images, chunk)
        return self.combine(ret, sem)

    def _check_images(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(
                f"expected images of shape (n, H, W, 3), got {images.shape}",
                where="EncodingModel.predict",
                fix="pass RGB images, channels last",
            )
        if images.dtype != np.uint8:
            raise DataError(
                f"expected uint8 images, got {images.dtype}",
                where="EncodingModel.predict",
                fix="convert with np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)",
            )
        if images.shape[1:3] != (self.resolution, self.resolution):
            from skimage.transform import resize

            resized = resize(
                images,
                (len(images), self.resolution, self.resolution, 3),
                order=1,
                anti_aliasing=True,
                preserve_range=True,
            )
            images = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
        return images

    # ---------------------------------------------------------------- files

    def save(self, sim_dir: str | Path) -> None:
        """Write ``simulator/subjects/<name>.safetensors`` (+ .json) for this subject."""
        from safetensors.numpy import save_file

        from ..utils.io import atomic_save, atomic_write_json

        name = self.meta["subject"]
        arrays = {k: np.ascontiguousarray(self.params[k]) for k in SUBJECT_ARRAYS}
        if self.units is not None:
            arrays["units_mean"], arrays["units_std"] = (
                np.ascontiguousarray(u, dtype=np.float32) for u in self.units
            )
        out = Path(sim_dir) / "subjects"
        atomic_save(out / f"{name}.safetensors", lambda p: save_file(arrays, str(p)))
        atomic_write_json(out / f"{name}.json", self.meta)

    @classmethod
    def load(cls, dataset_root: str | Path, subject: str) -> EncodingModel:
        """Rebuild ``subject``'s model from ``DATASET/simulator/`` (written by
        ``neuraldiffuser simulate``)."""
        from safetensors.numpy import load_file

        from .ventral import Ventral

        sim = Path(dataset_root) / "simulator"
        path = sim / "subjects" / f"{subject}.safetensors"
        if not path.is_file():
            have = (
                sorted(p.stem for p in (sim / "subjects").glob("*.safetensors"))
                if (sim / "subjects").is_dir()
                else []
            )
            raise DataError(
                f"no encoding model for subject '{subject}'"
                + (f" (have: {', '.join(have)})" if have else ""),
                where=str(sim),
                fix="only datasets written by `neuraldiffuser simulate` "
                "carry encoding models; check the subject name",
            )
        arrays = load_file(str(path))
        missing = [k for k in SUBJECT_ARRAYS if k not in arrays]
        if missing:
            raise DataError(
                f"missing arrays {missing}", where=str(path), fix="re-run `neuraldiffuser simulate`"
            )
        meta = json.loads((sim / "subjects" / f"{subject}.json").read_text())
        bank = load_file(str(sim / "filterbank.safetensors"))
        units = (arrays.pop("units_mean"), arrays.pop("units_std")) if "units_mean" in arrays else None
        return cls(arrays, meta, Ventral(sim / "ventral"), bank["channel_norm"], units)
