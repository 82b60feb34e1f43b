from __future__ import annotations

from ..base import Section


class DecoderConfig(Section):
    """fMRI decoder architecture (adapters, backbone, heads, prior, z decoder)."""
