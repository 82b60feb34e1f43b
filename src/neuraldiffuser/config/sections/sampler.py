from __future__ import annotations

from ..base import Section


class SamplerConfig(Section):
    """NeuralDiffuser's guided img2img DDIM sampler."""
