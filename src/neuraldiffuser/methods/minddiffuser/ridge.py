"""Ridge regression with per-output voxel selection (MindDiffuser's FastL2LiR decoders, method notes §7.1).

For every output p, keep the ``n_feat`` voxels whose absolute Pearson correlation with p over the
training rows is largest (constant voxels score 0), then solve the L2-regularised least squares on
those voxels plus a bias column, the bias penalised like every weight (as FastL2LiR does):

    w_p = (X̃_pᵀ X̃_p + α I)⁻¹ X̃_pᵀ y_p,   X̃_p = [X[:, S_p], 1].

Every X̃_pᵀ X̃_p is a sub-block of one Gram matrix G = [X, 1]ᵀ[X, 1], so G is formed once and a chunk
of outputs is solved as one batched Cholesky of gathered (k+1)×(k+1) blocks; the chunk size follows
a memory budget. With fewer training rows n than that costs, the same weights come from the n×n dual
system, w_p = X̃_pᵀ (X̃_p X̃_pᵀ + α I)⁻¹ y_p (an identity for α > 0): n²(k+1) + n³/3 instead of (k+1)³/3
operations per output, which turns the per-output 4,001² factorisations of a small fit into n² ones.
The form with fewer operations is used (``form="auto"``); at NSD's ~9,000 training images it is the
primal one for every preset n_feat. The model stores, per output, the selected voxel indices, their weights
and the bias (sparse: outputs × k, not voxels × outputs). Outputs are z-scored for the fit and mapped back
on prediction (the reference's target normalisation); an output that is constant in training is
predicted as that constant.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError, ModelLoadError
from ...utils.io import atomic_dir, atomic_write_json
from ...utils.progress import track

CONSTANT_VAR = 1e-8  # voxels below this training variance are never selected (FastL2LiR's rule)
FORMS = ("auto", "primal", "dual")


@contextmanager
def small_solves(device: torch.device):
    """One intra-op thread on the CPU while factorising many small matrices: torch's batched Cholesky runs
    one LAPACK call per matrix, and threading each ~100×100 call costs far more than it
    gains (measured ×20)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def unit_columns(x: torch.Tensor, zero_below: float = 0.0) -> torch.Tensor:
    """Centred columns of unit norm (so that a product of two gives Pearson r); columns with a
    variance below ``zero_below`` (and constant ones) become 0."""
    xc = x - x.mean(0)
    var = xc.pow(2).mean(0)
    scale = torch.where(
        var > max(zero_below, 0.0) + 1e-300, 1.0 / xc.norm(dim=0).clamp_min(1e-300), torch.zeros_like(var)
    )
    return xc * scale


class VoxelSelectionRidge:
    """``fit(X, Y)`` with X (n, voxels) and Y (n, outputs); ``predict(X)`` → (n, outputs)."""

    def __init__(
        self,
        n_feat: int,
        alpha: float,
        memory_mb: int = 1024,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        form: str = "auto",
    ):
        if n_feat < 1:
            raise ValueError(f"n_feat must be >= 1, got {n_feat}")
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.form = form
        self.n_feat, self.alpha = int(n_feat), float(alpha)
        self.memory_mb, self.device, self.dtype = int(memory_mb), torch.device(device), dtype
        self.index: torch.Tensor | None = None  # (P, k) int64 voxel indices
        self.coef: torch.Tensor | None = None  # (P, k) weights on z-scored outputs
        self.bias: torch.Tensor | None = None  # (P,)
        self.y_mean: torch.Tensor | None = None
        self.y_std: torch.Tensor | None = None  # 0 where the output was constant in training
        self.n_voxels = 0

    # ------------------------------------------------------------------ fitting

    def _chunk(self, k: int, n: int | None = None, v: int = 0) -> int:
        """Outputs per batched solve within ``memory_mb``: each output's row of v correlations (with its
        product and a temporary), then the primal's (k+1)² block or the dual's (k+1)×n voxel columns
        and n² kernel (each with its factor and temporaries)."""
        size = torch.finfo(self.dtype).bits // 8
        solve = 3 * (k + 1) ** 2 if n is None else 2 * (k + 1) * n + 3 * n * n
        return max(1, self.memory_mb * 2**20 // (size * (solve + 3 * v)))

    def use_dual(self, n: int, k: int) -> bool:
        """The n×n dual system where it costs fewer operations than the (k+1)×(k+1) primal one."""
        if self.form != "auto":
            return self.form == "dual"
        return n * n * (k + 1) + n**3 / 3 < (k + 1) ** 3 / 3

    def fit(self, x, y, progress: str | None = None) -> VoxelSelectionRidge:
        """Fit every output; ``progress`` names a bar over the output chunks."""
        x = torch.as_tensor(np.asarray(x), device=self.device).to(self.dtype)
        y = torch.as_tensor(np.asarray(y), device=self.device).to(self.dtype)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
            raise DataError(
                "ridge needs X (n, voxels) and Y (n, outputs) with "
                f"the same n, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if len(x) < 2:
            raise DataError(f"ridge needs at least 2 training rows, got {len(x)}")
        n, v = x.shape
        self.n_voxels = v
        k = min(self.n_feat, v)
        dual = self.use_dual(n, k if k < v else v)
        self.y_mean, std = y.mean(0), y.std(0, unbiased=False)
        constant = std <= 1e-12 * y.abs().amax(0).clamp_min(1.0)
        self.y_std = torch.where(constant, torch.zeros_like(std), std)
        ys = (y - self.y_mean) / torch.where(constant, torch.ones_like(std), std)
        if k >= v:  # no selection: every output shares one system, solved once for all of them
            w = self._solve_all(x, ys, dual)
            self.index = torch.arange(v).expand(y.shape[1], v).contiguous()
            self.coef, self.bias = w[:, :-1].float().cpu(), w[:, -1].float().cpu()
        else:
            self._fit_selected(x, ys, k, dual, progress)
        self.y_mean, self.y_std = self.y_mean.float().cpu(), self.y_std.float().cpu()
        return self

    def _solve_all(self, x: torch.Tensor, ys: torch.Tensor, dual: bool) -> torch.Tensor:
        """(outputs, v+1) weights of the penalised fit on every voxel plus the bias."""
        xb = torch.cat([x, torch.ones(len(x), 1, dtype=self.dtype, device=self.device)], dim=1)
        if dual:
            kern = xb @ xb.T
            kern.diagonal().add_(self.alpha)
            return (xb.T @ torch.cholesky_solve(ys, torch.linalg.cholesky(kern))).T
        gram = xb.T @ xb
        gram.diagonal().add_(self.alpha)
        return torch.cholesky_solve(xb.T @ ys, torch.linalg.cholesky(gram)).T

    def _fit_selected(self, x: torch.Tensor, ys: torch.Tensor, k: int, dual: bool, progress) -> None:
        """Per output: the k voxels of largest |r|, then one (k+1)×(k+1) primal or n×n dual solve."""
        n, v = x.shape
        x_mean = x.mean(0)
        xc = x - x_mean
        inv_norm = torch.where(
            xc.pow(2).mean(0) > CONSTANT_VAR,
            1.0 / xc.norm(dim=0).clamp_min(1e-300),
            torch.zeros(v, dtype=self.dtype, device=self.device),
        )
        if dual:
            solve, step = self._dual_solver(x), self._chunk(k, n, v)
        else:
            solve, step = self._primal_solver(x, x_mean), self._chunk(k, v=v)
        chunks = range(0, ys.shape[1], step)
        index, coef, bias = [], [], []
        for p0 in track(chunks, progress) if progress else chunks:
            yc = ys[:, p0 : p0 + step]
            # one product gives both the correlations and the primal right-hand sides: Xᵀy = X_cᵀy + x̄·Σy;
            # outputs × voxels, so that top-k runs along contiguous rows (×1.6 over columns)
            m = yc.T @ xc
            corr = m.abs() * inv_norm / yc.norm(dim=0).clamp_min(1e-300)[:, None]
            # ascending indices: a cache-friendlier gather
            sel = torch.topk(corr, k, dim=1).indices.sort(dim=1).values
            del corr
            with small_solves(self.device):
                w = solve(sel, yc, m)
            index.append(sel.cpu())
            coef.append(w[:, :-1].float().cpu())
            bias.append(w[:, -1].float().cpu())
        self.index, self.coef, self.bias = torch.cat(index), torch.cat(coef), torch.cat(bias)

    def _primal_solver(self, x: torch.Tensor, x_mean: torch.Tensor):
        """Gathered (k+1)×(k+1) blocks of one Gram matrix G = [X, 1]ᵀ[X, 1] + αI."""
        v = x.shape[1]
        xb = torch.cat([x, torch.ones(len(x), 1, dtype=self.dtype, device=self.device)], dim=1)
        gram = xb.T @ xb
        gram.diagonal().add_(self.alpha)
        del xb

        def solve(sel: torch.Tensor, yc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            total = yc.sum(0)
            full = torch.cat([sel, torch.full((len(sel), 1), v, device=self.device, dtype=sel.dtype)], dim=1)
            block = gram[full[:, :, None], full[:, None, :]]
            rhs = torch.cat([m.gather(1, sel) + x_mean[sel] * total[:, None], total[:, None]], dim=1)
            return torch.cholesky_solve(rhs[..., None], torch.linalg.cholesky(block))[..., 0]

        return solve

    def _dual_solver(self, x: torch.Tensor):
        """w = X̃ᵀ(X̃X̃ᵀ + αI)⁻¹y with X̃ = [X_S, 1] gathered per output: n×n kernels, no Gram matrix."""
        xt = x.T.contiguous()  # (v, n): an output's selected voxels are rows

        def solve(sel: torch.Tensor, yc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            ones = torch.ones(len(sel), 1, xt.shape[1], dtype=self.dtype, device=self.device)
            xs = torch.cat([xt[sel], ones], dim=1)  # (P, k+1, n)
            kern = xs.transpose(1, 2) @ xs
            kern.diagonal(dim1=1, dim2=2).add_(self.alpha)
            a = torch.cholesky_solve(yc.T[..., None], torch.linalg.cholesky(kern))
            return (xs @ a)[..., 0]

        return solve

    # ------------------------------------------------------------------ prediction

    def predict(self, x, chunk_mb: int = 256) -> np.ndarray:
        """(n, voxels) → (n, outputs) float32, on the original (not z-scored) output scale."""
        if self.index is None:
            raise ModelLoadError("the voxel-selection ridge is not fitted")
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.n_voxels:
            raise DataError(f"ridge was fit on {self.n_voxels} voxels, got input of shape {tuple(x.shape)}")
        p_total = self.index.shape[0]
        step = max(1, chunk_mb * 2**20 // (4 * self.n_voxels))
        out = torch.empty(len(x), p_total)
        for p0 in range(0, p_total, step):
            idx, w = self.index[p0 : p0 + step], self.coef[p0 : p0 + step]
            dense = torch.zeros(self.n_voxels, len(idx)).scatter_(0, idx.T, w.T)
            out[:, p0 : p0 + step] = x @ dense + self.bias[p0 : p0 + step]
        return (out * self.y_std + self.y_mean).numpy()

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """A folder with config.json and model.safetensors."""
        from safetensors.torch import save_file

        if self.index is None:
            raise ModelLoadError("cannot save an unfitted voxel-selection ridge")
        with atomic_dir(path) as tmp:
            tensors = {
                "index": self.index.to(torch.int32).contiguous(),
                "coef": self.coef.contiguous(),
                "bias": self.bias,
                "y_mean": self.y_mean,
                "y_std": self.y_std,
            }
            save_file(tensors, str(tmp / "model.safetensors"))
            atomic_write_json(
                tmp / "config.json",
                {
                    "class": "VoxelSelectionRidge",
                    "n_feat": self.n_feat,
                    "alpha": self.alpha,
                    "n_voxels": self.n_voxels,
                    "n_outputs": int(self.index.shape[0]),
                },
            )
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> VoxelSelectionRidge:
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise ModelLoadError(
                "not a voxel-selection ridge folder (config.json + model.safetensors)",
                where=str(path),
                fix="fit the MindDiffuser decoders with `neuraldiffuser train --method minddiffuser`",
            )
        cfg = json.loads((path / "config.json").read_text())
        t = load_file(str(path / "model.safetensors"))
        model = cls(cfg["n_feat"], cfg["alpha"])
        model.index, model.coef, model.bias = t["index"].long(), t["coef"], t["bias"]
        model.y_mean, model.y_std, model.n_voxels = t["y_mean"], t["y_std"], int(cfg["n_voxels"])
        return model
