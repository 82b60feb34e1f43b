"""Published rows for context in reports, with their sources (JSON files next to this module).

Values are fractions (0.961 = 96.1%) under the same metric names as ``registry.METRICS``. Cells
named in a row's ``unconfirmed`` list were not checked against a primary source.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def load_published() -> list[dict]:
    """Every published table: ``{"title", "source", "subjects", "protocol", "rows": [...]}``."""
    return [json.loads(p.read_text()) for p in sorted(HERE.glob("*.json"))]
