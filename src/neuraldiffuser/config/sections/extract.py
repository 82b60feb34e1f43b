from __future__ import annotations

from ..base import Section


class ExtractConfig(Section):
    """Target extraction (z, c, g) for every stimulus image."""
