"""Caches that let a long evaluation resume: ground-truth features and finished folders.

Ground-truth features are keyed by backbone, its weight file, the preprocessing settings, the
dataset and the exact list of image indices, so the same stimuli are embedded once however many
methods and settings are scored. Finished reconstruction folders are keyed by their manifest and
the evaluation settings. Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..utils.io import atomic_save, atomic_write_json


def digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


class FeatureCache:
    """``<root>/features/<backbone>-<key>.npz`` holding one array per feature node."""

    def __init__(self, root: Path | None):
        self.root = Path(root) / "features" if root is not None else None

    def path(self, backbone: str, key: str) -> Path | None:
        return self.root / f"{backbone}-{key}.npz" if self.root is not None else None

    def load(self, backbone: str, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(backbone, key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            return None  # a damaged cache entry is recomputed, never trusted

    def save(self, backbone: str, key: str, feats: dict[str, np.ndarray]) -> None:
        path = self.path(backbone, key)
        if path is None:
            return

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **feats)

        atomic_save(path, write)


class ResultCache:
    """``<root>/folders/<key>.json``: the rows of a reconstruction folder already scored."""

    def __init__(self, root: Path | None):
        self.root = Path(root) / "folders" if root is not None else None

    def load(self, key: str) -> list[dict] | None:
        if self.root is None or not (self.root / f"{key}.json").is_file():
            return None
        try:
            return json.loads((self.root / f"{key}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def save(self, key: str, rows: list[dict]) -> None:
        if self.root is not None:
            atomic_write_json(self.root / f"{key}.json", rows, indent=None)
