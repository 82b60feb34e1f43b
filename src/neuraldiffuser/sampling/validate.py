"""Choose decode and sampler settings (z matching, z source, img2img strength, κ, η) on held-out *training*
images, never on the test set.

The run holds out ``data.holdout_images`` training images (`train`), decodes them as the test set is decoded
(`decode --holdout`, once per decode setting of the grid), and every setting of the grid reconstructs them;
the setting with the best PCC + whole-map SSIM (Wang σ 1.5) + R² at the stimulus' own size
(evaluation/native.py) wins: the three scores the small-data literature reports, MSE as R² = 1 − MSE / pixel
variance of the stimuli so that each is 1 when perfect. MSE is needed beside PCC: blending the z of two
decoders lowers MSE more than PCC and costs some SSIM. The small data sets this serves leave too few images
for a finer criterion; benchmarks/kappa_validation.py is the larger-scale version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..config.schema import Config

# grid keys that are decode settings: each needs its own decoded file
DECODE_KEYS = ("z_match", "z_ridge_weight")
SMALL_GRID = [
    {"z_match": True, "z_ridge_weight": 0.0, "strength": 0.15, "kappa": 0.0, "eta": 0.0},
    *(
        {"z_match": False, "z_ridge_weight": w, "strength": 0.05, "kappa": 0.0, "eta": 0.0}
        for w in (0.0, 0.5, 1.0)
    ),
    *(
        {"z_match": False, "z_ridge_weight": w, "strength": 0.15, "kappa": 0.0, "eta": 0.0}
        for w in (0.0, 0.5)
    ),
    {"z_match": False, "z_ridge_weight": 0.0, "strength": 0.3, "kappa": 0.0, "eta": 0.0},
    {"z_match": False, "z_ridge_weight": 0.0, "strength": 0.3, "kappa": 300.0, "eta": 0.4},
]
"""The `small` flow's grid: z matching, the z source (``decode.z_ridge_weight``: the neural decoder's z, the
ridge baseline's, or their plain average), img2img strength and one guided point (docs/own-data.md). The
average, not finer weights: ten held-out images cannot estimate a weight better than equal weights (a {0, ¼,
½, ¾, 1} grid on the benchmark picked ¼ over ½ by 0.0008 of the criterion, paired standard error over the
ten images 0.018)."""


def criterion(values: dict[str, np.ndarray], variance: float) -> float:
    """PCC + SSIM (Wang) + R² of per-image scores; ``variance``: the stimuli's mean
    per-image pixel variance."""
    r2 = 1.0 - float(np.mean(values["mse"])) / max(float(variance), 1e-12)
    return float(np.mean(values["pcc"]) + np.mean(values["ssim_wang"]) + r2)


def stimulus_variance(ds, images) -> float:
    """Mean per-image pixel variance of ``images``' stimuli at their own size and mode, pixels in [0, 1]."""
    from ..evaluation.native import as_float

    x = as_float(ds.images.get(np.asarray(images, dtype=np.int64)), ds.meta.get("stimulus_mode", "RGB"))
    return float(x.reshape(len(x), -1).var(1).mean())


def decode_setting(point: Mapping) -> tuple:
    """The decode part of a grid point, as a hashable key: ((name, value), ...) over DECODE_KEYS it sets."""
    return tuple((k, point[k]) for k in DECODE_KEYS if k in point)


def decode_holdout_settings(
    config: Config, run_dir: str | Path, out: str | Path, grid: Sequence[dict]
) -> dict[tuple, Path]:
    """Decode the run's held-out training images once per distinct decode setting of ``grid``
    (:func:`decode_setting`); returns {setting: decoded file} for :func:`choose_sampler_settings`."""
    from ..training.decode import decode_holdout

    files = {}
    for key in dict.fromkeys(decode_setting(p) for p in grid):
        cfg = config.model_copy(deep=True)
        for k, v in key:
            setattr(cfg.decode, k, v)
        name = "_".join(f"{k}={v:g}" if not isinstance(v, bool) else f"{k}={v}" for k, v in key) or "run"
        files[key] = decode_holdout(cfg, run_dir, Path(out) / f"decoded_holdout_{name}.hdf5")
    return files


def _source(decoded_holdout, point: Mapping):
    if not isinstance(decoded_holdout, Mapping):
        return decoded_holdout
    if all(isinstance(k, bool) for k in decoded_holdout):  # {z_match: file}
        return decoded_holdout[bool(point["z_match"])]
    return decoded_holdout[decode_setting(point)]


def choose_sampler_settings(
    config: Config,
    decoded_holdout: str | Path | Mapping[bool, str | Path],
    out: str | Path,
    grid: Sequence[dict],
    workers: int = 1,
) -> tuple[dict, list[dict]]:
    """Reconstruct the held-out images with each ``{"strength", "kappa", "eta"}`` of ``grid``; returns the
    best setting and every setting's mean scores (best first). With ``decoded_holdout`` a mapping {decode
    setting: file} (:func:`decode_holdout_settings`; or {z_match: file}), a point's decode keys
    (DECODE_KEYS) pick the file."""
    from ..data import open_dataset
    from ..evaluation.native import score_folder
    from ..evaluation.recon import read_recon_manifest
    from .processes import reconstruct_in_processes
    from .runner import make_job, reconstruct

    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    table = []
    for point in grid:
        cfg = config.model_copy(deep=True)
        cfg.sampler.strength = float(point["strength"])
        sweep = {"kappa": [float(point["kappa"])], "eta": [float(point["eta"])]}
        source = _source(decoded_holdout, point)
        root = Path(out) / "_".join(
            f"{k}={v:g}" if not isinstance(v, bool) else f"{k}={v}"
            for k, v in point.items()
            if k not in ("kappa", "eta")
        )
        if workers > 1:
            (folder,) = reconstruct_in_processes(source, root, cfg, workers, sweep=sweep)
        else:
            (folder,) = reconstruct(make_job(source, cfg), root, cfg, sweep=sweep)
        rec = read_recon_manifest(Path(folder))
        values = score_folder(rec, ds)
        score = criterion(values, stimulus_variance(ds, rec.images))
        table.append({**point, "score": score, **{k: float(np.mean(v)) for k, v in values.items()}})
    table.sort(key=lambda r: -r["score"])
    return {k: table[0][k] for k in grid[0]}, table
