"""Choose sampler settings (img2img strength, κ, η) on held-out *training* images, never on the test set.

The run holds out ``data.holdout_images`` training images (`train`), decodes them as the test set is decoded
(`decode --holdout`), and every setting of the grid reconstructs them; the setting with the best
PCC + whole-map SSIM (Wang σ 1.5) at the stimulus' own size (evaluation/native.py) wins. The small data sets
this serves leave too few images for a finer criterion; benchmarks/kappa_validation.py is the
larger-scale version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..config.schema import Config


def criterion(values: dict[str, np.ndarray]) -> float:
    return float(np.mean(values["pcc"]) + np.mean(values["ssim_wang"]))


def choose_sampler_settings(
    config: Config,
    decoded_holdout: str | Path | Mapping[bool, str | Path],
    out: str | Path,
    grid: Sequence[dict],
    workers: int = 1,
) -> tuple[dict, list[dict]]:
    """Reconstruct the held-out images with each ``{"strength", "kappa", "eta"}`` of ``grid``; returns the
    best setting and every setting's mean scores (best first). With ``decoded_holdout`` a mapping {z_match:
    file} (the held-out images decoded with and without ``decode.z_match``), a point's
    ``"z_match"`` picks the file."""
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
        source = (
            decoded_holdout[bool(point["z_match"])]
            if isinstance(decoded_holdout, Mapping)
            else decoded_holdout
        )
        root = Path(out) / "_".join(
            f"{k}={v:g}" if not isinstance(v, bool) else f"{k}={v}"
            for k, v in point.items()
            if k not in ("kappa", "eta")
        )
        if workers > 1:
            (folder,) = reconstruct_in_processes(source, root, cfg, workers, sweep=sweep)
        else:
            (folder,) = reconstruct(make_job(source, cfg), root, cfg, sweep=sweep)
        values = score_folder(read_recon_manifest(Path(folder)), ds)
        table.append(
            {**point, "score": criterion(values), **{k: float(np.mean(v)) for k, v in values.items()}}
        )
    table.sort(key=lambda r: -r["score"])
    return {k: table[0][k] for k in grid[0]}, table
