"""A small linear-Gaussian dataset with known structure for the decoder tests.

Every image has latent factors F; its targets are fixed linear maps of F (c, g, z), and every
subject's voxels are a subject-specific linear map of F plus noise. So decoders have something
real to learn, and subjects share it (what pretraining exploits).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from neuraldiffuser.config import load_config
from neuraldiffuser.data.layout import SubjectArrays, write_generic
from neuraldiffuser.data.nsd import write_mindeye2
from neuraldiffuser.targets.store import write_store

SHAPES = {"c": (4, 8), "g": (2, 5, 6), "z": (4, 8, 8)}


def make_decoder_data(
    root: Path,
    subjects=(("subj01", 30), ("subj02", 36), ("subj03", 42)),
    n_train: int = 48,
    n_test: int = 12,
    sessions: int = 4,
    factors: int = 6,
    noise: float = 0.5,
    seed: int = 0,
    layout: str = "generic",
):
    """Write DATASET (``layout``: generic or mindeye2) and targets.hdf5 under ``root``; returns (dataset dir,
    targets path, factors)."""
    rng = np.random.default_rng(seed)
    n_images = n_test + n_train * len(subjects)
    f = rng.standard_normal((n_images, factors)).astype(np.float32)
    values = {
        k: (
            f @ rng.standard_normal((factors, int(np.prod(s)))).astype(np.float32) / np.sqrt(factors)
        ).reshape(n_images, *s)
        for k, s in SHAPES.items()
    }
    values["g"] = values["g"].astype(np.float16)
    test_images = np.arange(n_test)
    arrays = {}
    for i, (name, n_vox) in enumerate(subjects):
        own = n_test + i * n_train + np.arange(n_train)
        image = np.concatenate([own, np.repeat(test_images, 3)])
        session = np.concatenate(
            [np.arange(n_train) % sessions + 1, np.tile(np.arange(3) % sessions + 1, n_test)]
        )
        split = np.array(["train"] * n_train + ["test"] * (3 * n_test))
        order = np.lexsort((rng.random(len(image)), session))
        image, session, split = image[order], session[order], split[order]
        w = rng.standard_normal((factors, n_vox)).astype(np.float32)
        betas = f[image] @ w + noise * rng.standard_normal((len(image), n_vox)).astype(np.float32) + 3.0
        arrays[name] = SubjectArrays(betas.astype(np.float32), image, session, split)
    images = rng.integers(0, 256, size=(n_images, 8, 8, 3), dtype=np.uint8)
    captions = {i: [f"image {i}"] for i in range(n_images)}
    ds = (write_mindeye2 if layout == "mindeye2" else write_generic)(root / "ds", images, captions, arrays)
    targets = write_store(
        root / "targets.hdf5",
        np.arange(n_images),
        values,
        attrs={"latent_scale": 0.5, "guidance_layers": [0, 1], "zoo_path": "fake"},
    )
    return ds, targets, f


@contextmanager
def one_thread():
    """Tiny models gain nothing from intra-op threads and lose a lot to them on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_config(dataset: Path, **sections):
    """A config with tiny decoders that train in about a second on a CPU; ``sections``
    override per section."""
    base = {
        "seed": 3,
        "data": {"path": str(dataset), "subject": "subj01"},
        "decoder": {
            "hidden": 32,
            "blocks": 1,
            "proj_depth": 1,
            "prior_depth": 1,
            "prior_heads": 2,
            "prior_timesteps": 20,
            "target_norm": "standardize",
            "z_hidden": 32,
            "z_blocks": 1,
            "z_map_channels": 8,
            "z_up_channels": [8, 16],
            "z_norm_groups": 4,
        },
        "train": {
            "pretrain_epochs": 2,
            "finetune_epochs": 2,
            "batch_size": 12,
            "epoch_samples": None,
            "lr": 1e-3,
            "checkpoint_every": 1000,
            "tensorboard": False,
            "ridge_alphas": [0.1, 10.0, 1000.0],
        },
        "decode": {"prior_steps": 5},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return load_config(overrides=base)
