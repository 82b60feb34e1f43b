"""Voxel z-scoring with statistics from training trials only, saved with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import SubjectData


class VoxelScaler:
    """Per-voxel mean and standard deviation, (n_voxels,) float32 each, in the betas' units; ``transform``
    z-scores (…, n_voxels) betas into float32 standard units, ``identity`` does nothing."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def identity(cls, n_voxels: int) -> VoxelScaler:
        return cls(np.zeros(n_voxels, np.float32), np.ones(n_voxels, np.float32))

    @classmethod
    def fit(cls, subject: SubjectData, rows: np.ndarray, chunk: int = 2048, eps: float = 1e-6) -> VoxelScaler:
        """Streaming mean/std (float64 accumulators) over the given betas rows."""
        rows = np.sort(np.asarray(rows))
        if rows.size < 2:
            raise DataError(
                f"need at least 2 training trials to z-score, got {rows.size}", where=subject.source
            )
        s1 = np.zeros(subject.n_voxels)
        s2 = np.zeros(subject.n_voxels)
        for start in range(0, rows.size, chunk):
            x = subject.read(rows[start : start + chunk]).astype(np.float64)
            s1 += x.sum(0)
            s2 += (x * x).sum(0)
        mean = s1 / rows.size
        var = np.maximum(s2 / rows.size - mean**2, 0.0)
        return cls(mean, np.sqrt(var) + eps)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.mean.shape[0]:
            raise DataError(f"betas have {x.shape[-1]} voxels, scaler was fit on {self.mean.shape[0]}")
        return ((x - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        from ..utils.io import atomic_path

        with atomic_path(path) as tmp:
            save_file(self.state_dict(), str(tmp))

    @classmethod
    def load(cls, path: str | Path) -> VoxelScaler:
        from safetensors.numpy import load_file

        d = load_file(str(path))
        return cls(d["mean"], d["std"])
