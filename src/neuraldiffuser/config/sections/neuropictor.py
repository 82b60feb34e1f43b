from __future__ import annotations

from ..base import Section


class NeuroPictorConfig(Section):
    """NeuroPictor-style model: fMRI tokens, high-level context, ControlNet-style low-level branch."""
