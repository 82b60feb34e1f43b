"""NeuralDiffuser's sampler (img2img DDIM + CFG + SAG + g guidance) and the reconstruct runner.

Nothing heavy is imported here; ``from neuraldiffuser.sampling import NeuralDiffuserSampler`` loads
torch and diffusers on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NeuralDiffuserSampler": "sampler",
    "make_plan": "sampler",
    "FeatureLoss": "guidance",
    "layer_weights": "guidance",
    "get_method": "registry",
    "register": "registry",
    "reconstruct": "runner",
    "make_job": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
