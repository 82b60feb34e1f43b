"""A tiny trained run for the pipeline tests: linear-Gaussian arrays with targets of the tiny stack's shapes
(c 77 × 16, z 4 × 8 × 8, g 6 × 17 × 16), trained by ``train_from_arrays`` (the ``train`` code path)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SHAPES = {"c": (77, 16), "z": (4, 8, 8), "g": (6, 17, 16)}
TINY_DECODER = {
    "hidden": 32,
    "blocks": 1,
    "proj_depth": 1,
    "z_map_channels": 8,
    "z_up_channels": [8, 8],
    "z_norm_groups": 4,
}
TINY_TRAIN = {
    "finetune_epochs": 2,
    "pretrain_epochs": 1,
    "batch_size": 8,
    "epoch_samples": None,
    "checkpoint_every": 1000,
    "tensorboard": False,
    "ridge_alphas": [1.0, 100.0],
}
TINY_SAMPLER = {"steps": 6, "repeats": 2, "kappa": 50.0, "eta": 0.5, "image_batch": 1}


def linear_problem(
    n_images: int = 40, n_voxels: int = 30, factors: int = 6, noise: float = 0.3, seed: int = 0
):
    """(betas (n, V) float32, targets {c, z, g} float32): one trial per image, all linear
    in shared factors."""
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n_images, factors)).astype(np.float32)
    targets = {
        k: (f @ rng.standard_normal((factors, int(np.prod(s)))).astype(np.float32) / 3).reshape(n_images, *s)
        for k, s in SHAPES.items()
    }
    betas = f @ rng.standard_normal((factors, n_voxels)).astype(np.float32) + noise * rng.standard_normal(
        (n_images, n_voxels)
    ).astype(np.float32)
    return betas.astype(np.float32), targets


def tiny_run(root: Path, stack: Path, n_train: int = 32):
    """Train into root/run with a private copy of the stack (so a test may delete it); returns
    (run, betas, targets)."""
    from neuraldiffuser import load_config, train_from_arrays

    private = shutil.copytree(stack, root / "stack")
    betas, targets = linear_problem()
    cfg = load_config(
        "mini",
        overrides={
            "zoo": {"path": str(private)},
            "decoder": TINY_DECODER,
            "train": TINY_TRAIN,
            "sampler": TINY_SAMPLER,
        },
    )
    run = train_from_arrays(
        betas[:n_train], {k: v[:n_train] for k, v in targets.items()}, root / "run", config=cfg
    )
    return run, betas, targets
