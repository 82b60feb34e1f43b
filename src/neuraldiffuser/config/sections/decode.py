from __future__ import annotations

from ..base import Section


class DecodeConfig(Section):
    """Decoding the test set: repeat handling, prior sampling, z distribution matching."""
