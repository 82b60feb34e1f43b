from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Section


class ExtractConfig(Section):
    """Target extraction (z, c, g) for every stimulus image."""

    targets: list[Literal["z", "c", "g"]] = ["z", "c", "g"]
    """Which targets to extract."""
    batch_size: int = Field(16, ge=1)
    """Images per batch."""
    z_mode: Literal["sample", "mode"] = "sample"
    """VAE posterior: a sample with a fixed per-image seed (the reference's z_all) or its
    mode (its z trainer)."""
    z_seed: int = Field(42, ge=0)
    """Seed of the z samples; each image draws its noise from (z_seed, image index), so
    resuming changes nothing."""
    resize: Literal["lanczos", "bicubic", "bilinear"] = "lanczos"
    """Filter (PIL) used to bring images to the stack's resolution for z; images already at it are
    used as they are."""
    g_dtype: Literal["float16", "float32"] = "float16"
    """Storage dtype of g (the reference stores it in half precision)."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu' or 'cuda[:n]'."""
