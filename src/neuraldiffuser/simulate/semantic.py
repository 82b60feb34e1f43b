"""The higher-visual code's named semantic space: the scenes' attributes (shape categories, object colours,
count, layout words, sizes, background kind and colour), shared across subjects.

``attribute_vectors`` gives each scene's multi-hot attributes; the image-computable model that estimates
them from pixels (so it applies to any image, reconstructions included) is ``simulate/ventral.py``.
Subjects share the space and differ in their voxels' weights on it.
"""

from __future__ import annotations

import numpy as np

from .scenes import BACKGROUNDS, COLOR_NAMES, COLS, ROWS, SIZES
from .shapes import SHAPES

GROUPS = {
    "shape": [f"shape:{s}" for s in SHAPES],
    "color": [f"color:{c}" for c in COLOR_NAMES],
    "count": ["count:1", "count:2", "count:3"],
    "layout": [f"row:{r}" for r in ROWS] + [f"col:{c}" for c in COLS],
    "size": [f"size:{s}" for s in SIZES],
    "background": [f"background:{b}" for b in BACKGROUNDS] + [f"background_color:{c}" for c in COLOR_NAMES],
}
ATTRIBUTES = [a for names in GROUPS.values() for a in names]
GROUP_OF = np.array([g for g, names in GROUPS.items() for _ in names])


def attribute_vectors(records: list[dict]) -> np.ndarray:
    """(n, len(ATTRIBUTES)) float32: multi-hot presence of each attribute in each scene."""
    index = {a: i for i, a in enumerate(ATTRIBUTES)}
    out = np.zeros((len(records), len(ATTRIBUTES)), dtype=np.float32)
    for i, r in enumerate(records):
        objs = r["objects"]
        keys = [
            f"count:{len(objs)}",
            f"background:{r['background']['kind']}",
            f"background_color:{r['background']['color']}",
        ]
        for o in objs:
            keys += [
                f"shape:{o['shape']}",
                f"color:{o['color']}",
                f"row:{o['row']}",
                f"col:{o['col']}",
                f"size:{o['size']}",
            ]
        out[i, [index[k] for k in keys]] = 1.0
    return out
