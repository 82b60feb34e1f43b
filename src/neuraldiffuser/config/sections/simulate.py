from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..base import Section


class SimulateConfig(Section):
    """In-silico NSD simulator: preset, subjects, seed, image size, layouts (unset fields come
    from the preset)."""

    preset: Literal["mini", "small", "nsd-like", "scenes"] = "mini"
    """Size preset: 'mini' (demo), 'small' (tests), 'nsd-like' (NSD's design), 'scenes' (images
    + captions only)."""
    seed: int = Field(0, ge=0)
    """Everything (scenes, subjects, noise) is a deterministic function of this seed."""
    subjects: int | None = Field(None, ge=1)
    """Number of subjects (default: the preset's)."""
    image_size: int | None = Field(None, ge=8)
    """Image height = width in pixels (default: the preset's, 64)."""
    n_images: int | None = Field(None, ge=1)
    """'scenes' preset: number of images. Subject presets: training images per subject."""
    test_images: int | None = Field(None, ge=1)
    """Shared test images, each shown 3 times to every subject (default: the preset's)."""
    sessions: int | None = Field(None, ge=1)
    """Sessions per subject (default: the preset's)."""
    voxels: list[PositiveInt] | None = None
    """[min, max] voxel count; each subject draws its own count in this range (default: the preset's)."""
    noise_scale: float = Field(1.0, ge=0)
    """Multiplies every voxel's noise SD (1 = the preset's NSD-like noise ceilings; 0 = noiseless betas)."""
    layout: Literal["generic", "mindeye2", "both"] = "generic"
    """Write OUT in our generic layout, MindEye2's NSD layout at OUT/mindeye2, or both."""
    betas_dtype: Literal["float32", "float16"] = "float32"
    """On-disk dtype of the generic layout's betas (MindEye2's layout is always float32)."""
