from __future__ import annotations

from ..base import Section


class SimulateConfig(Section):
    """In-silico NSD simulator: preset, subjects, seed, image size."""
