from __future__ import annotations

from ..base import Section


class TrainConfig(Section):
    """Decoder training: two stages, optimiser, schedule, checkpoints."""
