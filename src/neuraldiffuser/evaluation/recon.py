"""Reconstruction folders (``RECON/<method>/<setting>/manifest.json``, docs/architecture.md).

A folder is validated once when found: every listed image has exactly ``repeats`` PNG files that
exist, so a long evaluation never fails half way on a missing file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

REQUIRED = ("method", "setting", "repeats", "images", "files")
SWEEP = re.compile(r"^kappa=(?P<kappa>[-+0-9.eE]+)_eta=(?P<eta>[-+0-9.eE]+)$")


@dataclass
class ReconFolder:
    path: Path
    manifest: dict

    @property
    def method(self) -> str:
        return str(self.manifest["method"])

    @property
    def setting(self) -> str:
        return str(self.manifest["setting"])

    @property
    def params(self) -> dict:
        return dict(self.manifest.get("params") or {})

    @property
    def repeats(self) -> int:
        return int(self.manifest["repeats"])

    @property
    def images(self) -> np.ndarray:
        return np.asarray(self.manifest["images"], dtype=np.int64)

    @property
    def subject(self) -> str | None:
        return self.manifest.get("subject")

    def file(self, image: int, repeat: int) -> Path:
        return self.path / self.manifest["files"][str(int(image))][repeat]

    def strip(self, image: int) -> Path | None:
        rel = (self.manifest.get("strips") or {}).get(str(int(image)))
        return self.path / rel if rel else None

    def load(self, images, repeat: int) -> np.ndarray:
        """uint8 (n, H, W, 3) reconstructions of these images for one repeat."""
        return np.stack([read_png(self.file(i, repeat)) for i in images])

    def sweep_point(self) -> tuple[float, float] | None:
        """(κ, η) of a guidance sweep setting, from ``params`` or a name like ``kappa=3e+05_eta=0.2``."""
        p = self.params
        if "kappa" in p and "eta" in p:
            return float(p["kappa"]), float(p["eta"])
        m = SWEEP.match(self.setting)
        return (float(m["kappa"]), float(m["eta"])) if m else None


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read image ({exc})",
            where=str(path),
            fix="re-run `neuraldiffuser reconstruct` for this folder",
        ) from None


def read_recon_manifest(folder: Path) -> ReconFolder:
    """A reconstruction folder's manifest.json (not a training run's: that is
    ``training.manifest.read_manifest``)."""
    path = folder / "manifest.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read manifest ({exc})", where=str(path)) from None
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise DataError(
            f"manifest lacks {', '.join(missing)}",
            where=str(path),
            fix="see 'Reconstruction folder' in docs/architecture.md",
        )
    rec = ReconFolder(folder, doc)
    if rec.repeats < 1 or len(rec.images) == 0:
        raise DataError(
            f"manifest lists {len(rec.images)} images with {rec.repeats} repeats", where=str(path)
        )
    for image in rec.images:
        files = doc["files"].get(str(int(image)))
        if not files or len(files) < rec.repeats:
            raise DataError(
                f"image {image} has {len(files or [])} files, expected {rec.repeats} repeats",
                where=f"{path}:files",
            )
        for f in files[: rec.repeats]:
            if not (folder / f).is_file():
                raise DataError(
                    f"missing reconstruction {f}",
                    where=str(folder),
                    fix="re-run `neuraldiffuser reconstruct` (it resumes)",
                )
    return rec


def find_recon_folders(paths) -> list[ReconFolder]:
    """Every folder with a manifest.json at or below the given paths, in a stable order."""
    found: dict[Path, ReconFolder] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise DataError(
                "path not found", where=str(p), fix="give a folder written by `neuraldiffuser reconstruct`"
            )
        manifests = (
            [p / "manifest.json"] if (p / "manifest.json").is_file() else sorted(p.rglob("manifest.json"))
        )
        for m in manifests:
            if m.parent.resolve() not in found:
                found[m.parent.resolve()] = read_recon_manifest(m.parent)
    if not found:
        raise DataError(
            "no reconstruction folders (manifest.json) found",
            where=", ".join(map(str, paths)),
            fix="run `neuraldiffuser reconstruct` first; each "
            "RECON/<method>/<setting>/ holds a manifest.json",
        )
    return sorted(found.values(), key=lambda r: (r.method, r.setting, str(r.path)))
