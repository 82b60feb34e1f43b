"""Brain correlation per ROI through an encoding model (method notes §6.1).

An encoder is any object with ``roi`` ((V,) labels) and ``predict(uint8 (n, H, W, 3)) -> (n, V)``.
In silico it is the simulator's noiseless model of the subject; for NSD, a user-supplied encoder
(GNet in MindEye2) given as ``evaluate.brain_encoder: "package.module:factory"``, where
``factory(dataset_root, subject)`` returns such an object. Each reconstruction's predicted betas are
correlated (Pearson across an ROI's voxels) with the subject's measured betas for that image,
averaged over its test repeats; the score is the mean over images.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from .backbones import Unavailable
from .metrics import pearson_rows

ALL_VOXELS = "all"


def load_encoder(spec: str, dataset_root: Path, subject: str):
    """The encoder named by ``evaluate.brain_encoder`` ('auto', 'none' or 'module:callable')."""
    if spec == "none":
        raise Unavailable("brain correlation is switched off (evaluate.brain_encoder: none)")
    if spec == "auto":
        if not (Path(dataset_root) / "simulator").is_dir():
            raise Unavailable(
                f"no encoding model: {dataset_root} has no simulator/ folder (it is not "
                "a simulated dataset); for NSD pass a GNet-style encoder with --set "
                "evaluate.brain_encoder=package.module:factory (docs/evaluation.md)"
            )
        try:
            from ..simulate.encoding import EncodingModel
        except ImportError as exc:
            raise Unavailable(f"the simulator's encoding model cannot be imported ({exc})") from None
        return EncodingModel.load(dataset_root, subject)
    if ":" not in spec:
        from ..errors import ConfigError

        raise ConfigError(
            f"brain_encoder '{spec}' is not 'auto', 'none' or 'module:callable'",
            where="evaluate.brain_encoder",
        )
    module, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(
            f"brain encoder '{spec}' cannot be imported ({exc.__class__.__name__}: {exc})"
        ) from None
    return factory(dataset_root, subject)


def check_encoder(encoder, n_voxels: int) -> np.ndarray:
    """Validate the encoder against the subject's betas; return its (V,) ROI labels as strings."""
    from ..errors import DataError

    if not callable(getattr(encoder, "predict", None)):
        raise DataError(
            f"brain encoder {type(encoder).__name__} has no predict(images) method",
            where="evaluate.brain_encoder",
        )
    roi = getattr(encoder, "roi", None)
    roi = np.full(n_voxels, ALL_VOXELS, dtype=object) if roi is None else np.asarray(roi).astype(str)
    if roi.shape != (n_voxels,):
        raise DataError(
            f"encoder has {roi.shape[0]} voxel labels but the subject's betas have {n_voxels} voxels",
            where="evaluate.brain_encoder",
        )
    return roi


def encoder_input(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize uint8 images to the encoder's input size with LANCZOS (as MindEye2 feeds GNet)."""
    if size is None or tuple(images.shape[1:3]) == tuple(size):
        return images
    from PIL import Image

    h, w = size
    return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.LANCZOS)) for im in images])


def predict(encoder, images: np.ndarray, size: tuple[int, int] | None, n_voxels: int) -> np.ndarray:
    from ..errors import DataError

    out = np.asarray(encoder.predict(encoder_input(images, size)), dtype=np.float64)
    if out.shape != (len(images), n_voxels):
        raise DataError(
            f"encoder returned {out.shape}, expected ({len(images)}, {n_voxels})",
            where="evaluate.brain_encoder",
        )
    return out


def roi_names(roi: np.ndarray) -> list[str]:
    """'all' first, then each label in order of first appearance."""
    seen = list(dict.fromkeys(roi.tolist()))
    return [ALL_VOXELS] + [r for r in seen if r != ALL_VOXELS]


def brain_correlation(predicted: np.ndarray, measured: np.ndarray, roi: np.ndarray) -> dict[str, np.ndarray]:
    """{ROI: per-image Pearson r across the ROI's voxels}; 'all' uses every voxel (MindEye2's nsd_general)."""
    if predicted.shape != measured.shape:
        raise ValueError(f"predicted {predicted.shape} vs measured {measured.shape}")
    out = {}
    for name in roi_names(roi):
        mask = np.ones(len(roi), bool) if name == ALL_VOXELS else roi == name
        out[name] = pearson_rows(predicted[:, mask], measured[:, mask])
    return out
