"""``RUN/decoders/manifest.json``: what a trained run holds, read the same way for every method."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

WHAT = {
    "neuraldiffuser": "trained decoders",
    "minddiffuser": "fitted MindDiffuser decoders",
    "neuropictor": "trained NeuroPictor model",
}


def read_manifest(run_dir: str | Path, method: str | None = None) -> dict[str, Any]:
    """The run's manifest; with ``method``, an error unless the run was trained by that method
    (a manifest without 'method' is NeuralDiffuser's)."""
    path = Path(run_dir) / "decoders" / "manifest.json"
    if not path.is_file():
        flag = f" --method {method}" if method not in (None, "neuraldiffuser") else ""
        raise ModelLoadError(
            f"no {WHAT.get(method or 'neuraldiffuser', 'trained run')} (decoders/manifest.json)",
            where=str(run_dir),
            fix=f"run `neuraldiffuser train DATASET TARGETS{flag} "
            "--out RUN` into this folder first (or --resume it)",
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"manifest is not valid JSON ({exc})", where=str(path)) from None
    found = manifest.get("method", "neuraldiffuser")
    if method is not None and found != method:
        raise ModelLoadError(
            f"the run holds '{found}' decoders, not {method}'s",
            where=str(path),
            fix="load it with neuraldiffuser.load_pipeline, or decode it with `neuraldiffuser decode RUN`",
        )
    return manifest
