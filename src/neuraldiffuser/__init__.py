"""neuraldiffuser: reconstruct seen images from fMRI with guided diffusion.

The names a user needs are importable from here and load their modules on first use, so
``import neuraldiffuser`` stays fast (torch, diffusers and transformers load only when asked for)::

    from neuraldiffuser import NeuralDiffuserPipeline, RidgeDecoder, train_from_arrays, load_config

Stages live in sub-packages (data, simulate, zoo, targets, models, training, sampling, pipelines,
methods, evaluation, report); see docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → (module, attribute)
_API: dict[str, tuple[str, str]] = {
    # pipelines: a trained run as one object
    "NeuralDiffuserPipeline": ("neuraldiffuser.pipelines.neuraldiffuser", "NeuralDiffuserPipeline"),
    "MindDiffuserPipeline": ("neuraldiffuser.pipelines.comparison", "MindDiffuserPipeline"),
    "NeuroPictorPipeline": ("neuraldiffuser.pipelines.comparison", "NeuroPictorPipeline"),
    "load_pipeline": ("neuraldiffuser.pipelines.comparison", "load_pipeline"),
    # configuration
    "Config": ("neuraldiffuser.config", "Config"),
    "load_config": ("neuraldiffuser.config", "load_config"),
    "save_config": ("neuraldiffuser.config", "save_config"),
    # data
    "open_dataset": ("neuraldiffuser.data", "open_dataset"),
    "VoxelScaler": ("neuraldiffuser.data", "VoxelScaler"),
    "simulate_dataset": ("neuraldiffuser.api", "simulate_dataset"),  # not "simulate": that is the subpackage
    "extract_from_arrays": ("neuraldiffuser.targets.extract", "extract_from_arrays"),
    # decoders
    "RidgeDecoder": ("neuraldiffuser.models.ridge", "RidgeDecoder"),
    "train_from_arrays": ("neuraldiffuser.training.arrays", "train_from_arrays"),
    "train_decoders": ("neuraldiffuser.training.runner", "train_decoders"),
    # evaluation
    "score_images": ("neuraldiffuser.evaluation.arrays", "score_images"),
    "run_evaluation": ("neuraldiffuser.evaluation.runner", "run_evaluation"),
    # the demo
    "run_demo": ("neuraldiffuser.demo", "run_demo"),
    "train_demo_decoders": ("neuraldiffuser.demo", "train_demo_decoders"),
    "SMALL_DEMO": ("neuraldiffuser.demo", "SMALL_DEMO"),
    # errors
    "NeuralDiffuserError": ("neuraldiffuser.errors", "NeuralDiffuserError"),
    "ConfigError": ("neuraldiffuser.errors", "ConfigError"),
    "DataError": ("neuraldiffuser.errors", "DataError"),
    "ModelLoadError": ("neuraldiffuser.errors", "ModelLoadError"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuraldiffuser' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
