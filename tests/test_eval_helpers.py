"""Builders for evaluation tests: a dataset of real photos, a fake encoder, reconstruction folders.

The reconstruction folders follow the contract in docs/architecture.md exactly (manifest.json,
images/<idx>_r<k>.png, strips/<idx>.png, config.yaml), as `reconstruct` writes them.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from neuraldiffuser.data.layout import SubjectArrays, write_generic


def photo_stimuli(n: int = 10, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` square crops of scikit-image's real photos, resized: uint8 (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    left, right, _ = data.stereo_motorcycle()
    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), left, right]
    out = []
    for i in range(n):
        im = photos[i % len(photos)]
        s = int(min(im.shape[:2]) * rng.uniform(0.6, 0.95))
        y, x = rng.integers(0, im.shape[0] - s + 1), rng.integers(0, im.shape[1] - s + 1)
        out.append(np.asarray(Image.fromarray(im[y : y + s, x : x + s]).resize((size, size), Image.BICUBIC)))
    return np.stack(out)


class FakeEncoder:
    """Stands in for the simulator's EncodingModel: voxels respond linearly to 8×8 colour thumbnails."""

    def __init__(self, n_voxels: int = 48, seed: int = 0, baseline: float = 0.0):
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(8 * 8 * 3, n_voxels))
        self.baseline = baseline * rng.normal(size=n_voxels)  # per-voxel offsets, as raw betas have
        self.roi = np.array(
            ["V1"] * (n_voxels // 3)
            + ["V2"] * (n_voxels // 3)
            + ["higher"] * (n_voxels - 2 * (n_voxels // 3))
        )
        self.calls: list[tuple[int, ...]] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(images.shape)
        n, h, w, _ = images.shape
        thumbs = images.reshape(n, 8, h // 8, 8, w // 8, 3).mean(axis=(2, 4)) / 255.0
        return thumbs.reshape(n, -1) @ self.weights + self.baseline


def register_encoder(monkeypatch, encoder: FakeEncoder) -> str:
    """Make ``encoder`` importable as a plugin and return its ``module:callable`` spec."""
    mod = types.ModuleType("nd_test_encoder")
    mod.factory = lambda root, subject: encoder
    monkeypatch.setitem(sys.modules, "nd_test_encoder", mod)
    return "nd_test_encoder:factory"


def write_truth(
    root: Path, stimuli: np.ndarray, encoder: FakeEncoder, n_test: int = 6, noise: float = 0.5, seed: int = 0
) -> Path:
    """Generic-layout dataset: images [0, n_test) are test images seen 3 times, the rest train once."""
    rng = np.random.default_rng(seed)
    test = list(range(n_test)) * 3
    train = list(range(n_test, len(stimuli)))
    image = np.array(train[:2] + test + train[2:])
    split = np.where(np.isin(image, np.arange(n_test)), "test", "train")
    session = np.repeat([1, 2], [len(image) // 2, len(image) - len(image) // 2])
    clean = encoder.predict(stimuli[image])
    betas = (clean + rng.normal(0, noise, clean.shape)).astype(np.float32)
    captions = {i: [f"photo {i}"] for i in range(len(stimuli))}
    subj = SubjectArrays(betas, image, session, split)
    return write_generic(root, stimuli, captions, {"subj01": subj})


def write_recon(
    root: Path,
    method: str,
    setting: str,
    images,
    recons: np.ndarray,
    stimuli: np.ndarray,
    params: dict | None = None,
) -> Path:
    """One RECON/<method>/<setting>/ folder; ``recons`` is uint8 (R, n, H, W, 3) in the
    order of ``images``."""
    folder = Path(root) / method / setting
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "strips").mkdir(exist_ok=True)
    files, strips = {}, {}
    for k, idx in enumerate(images):
        names = []
        for r in range(len(recons)):
            name = f"images/{idx:05d}_r{r}.png"
            Image.fromarray(recons[r, k]).save(folder / name)
            names.append(name)
        files[str(idx)] = names
        strip = np.concatenate([stimuli[idx]] + [recons[r, k] for r in range(len(recons))], axis=1)
        Image.fromarray(strip).save(folder / f"strips/{idx:05d}.png")
        strips[str(idx)] = f"strips/{idx:05d}.png"
    (folder / "config.yaml").write_text("preset: mini\n")
    manifest = {
        "method": method,
        "setting": setting,
        "params": params or {},
        "dataset": "test",
        "subject": "subj01",
        "repeats": len(recons),
        "images": [int(i) for i in images],
        "files": files,
        "strips": strips,
        "seconds_per_image": 0.1,
        "config": "config.yaml",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def degrade(images: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """Blend towards grey and add noise: a stand-in for an imperfect reconstruction."""
    rng = np.random.default_rng(seed)
    x = images.astype(np.float64) * (1 - amount) + 128 * amount + rng.normal(0, 60 * amount, images.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
