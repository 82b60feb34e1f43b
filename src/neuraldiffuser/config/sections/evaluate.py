from __future__ import annotations

from ..base import Section


class EvaluateConfig(Section):
    """Evaluation metrics and their backbones."""
