"""Comparison methods in the same framework as NeuralDiffuser (docs/methods.md).

- ``minddiffuser``: voxel-selection ridge decoders for c (short token length), z and masked g; img2img;
  refinement of z (or c and z) by back-propagation through the whole sampler.
- ``neuropictor``: a NeuroPictor-style model: per-subject adapters into a shared fMRI token space, a
  high-level network giving the UNet's context, a low-level network feeding a ControlNet, trained with
  the diffusion loss.

Both are reached through ``neuraldiffuser train/decode/reconstruct --method ...``. Nothing heavy is
imported here.
"""

from __future__ import annotations

import json
from pathlib import Path


def run_method(run_dir: str | Path) -> str | None:
    """The comparison method a run folder was trained with, or None for NeuralDiffuser's own decoders."""
    path = Path(run_dir) / "decoders" / "manifest.json"
    if not path.is_file():
        return None
    from ..sampling.registry import trained_methods

    method = json.loads(path.read_text()).get("method")
    return method if method in trained_methods() else None
