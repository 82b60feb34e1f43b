"""The higher-visual code: a named semantic space computed from pixels, shared across subjects.

Higher visual cortex is modelled as a linear read-out of a fixed nonlinear feature hierarchy
(the filter bank → rotation-invariant edge-junction features, colour-name histograms, centre-surround
blobs, pooled over the whole field and over a 3×3 grid), fitted once per dataset to the scenes'
attribute vectors (shape categories, object colours, count, layout words, sizes, background kind and
colour). The fitted read-out is the "semantic space": each axis is the model's image-computable
estimate of one attribute, so it applies to any image (reconstructions included), not only to
scenes with records. Subjects share the space and differ in their voxels' weights on it.
"""

from __future__ import annotations

import numpy as np

from .features import N_CHANNELS, ORIENTATIONS_DEG, SF_CPI, block_mean
from .scenes import BACKGROUNDS, COLOR_NAMES, COLORS, COLS, ROWS, SIZES
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
        keys = [f"count:{len(objs)}", f"background:{r['background']['kind']}", f"background_color:{r['background']['color']}"]
        for o in objs:
            keys += [f"shape:{o['shape']}", f"color:{o['color']}", f"row:{o['row']}", f"col:{o['col']}", f"size:{o['size']}"]
        out[i, [index[k] for k in keys]] = 1.0
    return out


def _pool(m: np.ndarray) -> np.ndarray:
    """Mean over the whole field and over a 3×3 grid of cells: (n, c, H, W) → (n, c, 10)."""
    n, c, h, w = m.shape
    edges_h, edges_w = np.linspace(0, h, 4).round().astype(int), np.linspace(0, w, 4).round().astype(int)
    cells = [m[..., edges_h[i] : edges_h[i + 1], edges_w[j] : edges_w[j + 1]].mean(axis=(-2, -1)) for i in range(3) for j in range(3)]
    return np.stack([m.mean(axis=(-2, -1)), *cells], axis=-1)


def _soft_max_pool(m: np.ndarray, p: float = 4.0) -> np.ndarray:
    """L^p mean over the field: close to the mean for flat maps, to the peak for sparse ones."""
    return np.mean(np.maximum(m, 0) ** p, axis=(-2, -1)) ** (1.0 / p)


def color_name_maps(images: np.ndarray, temperature: float = 0.004) -> np.ndarray:
    """Soft assignment of every pixel (2×2 blocks) to the named colours: (n, colours, H/2, W/2)."""
    x = block_mean(np.moveaxis(images.astype(np.float32) / 255.0, -1, 1))  # (n, 3, h, h)
    proto = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.float32) / 255.0
    d = ((x[:, None] - proto[None, :, :, None, None]) ** 2).sum(axis=2)
    logits = -d / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def ventral_features(maps: np.ndarray, images: np.ndarray) -> np.ndarray:
    """(n, D) fixed nonlinear features of images whose filter-bank maps are ``maps``."""
    if maps.shape[1] != N_CHANNELS:
        raise ValueError(f"expected {N_CHANNELS} filter-bank channels, got {maps.shape[1]}")
    n, n_ori = len(maps), len(ORIENTATIONS_DEG)
    lum = maps[:, : len(SF_CPI) * n_ori].reshape(n, len(SF_CPI), n_ori, *maps.shape[2:])
    color_energy = maps[:, len(SF_CPI) * n_ori : -6]
    signed = maps[:, -6:]
    total = lum.sum(axis=2) + 1e-4  # (n, sf, h, w) contrast energy per band
    e = lum / total[:, :, None]  # orientation distribution per location
    right = e[:, :, 0] * e[:, :, 2] + e[:, :, 1] * e[:, :, 3]  # junctions of orthogonal edges (corners, crosses)
    oblique = sum(e[:, :, k] * e[:, :, (k + 1) % n_ori] for k in range(n_ori))  # 45° junctions (triangles, stars)
    peaked = (e**2).sum(axis=2)  # one dominant orientation (straight edges, stripes)
    junctions = np.concatenate([right, oblique, peaked], axis=1) * np.sqrt(np.concatenate([total] * 3, axis=1))
    names = color_name_maps(images)
    parts = [
        _pool(np.sqrt(total)).reshape(n, -1),
        _pool(color_energy).reshape(n, -1),
        _pool(signed).reshape(n, -1),
        _pool(names).reshape(n, -1),
        _pool(junctions).reshape(n, -1),
        _soft_max_pool(junctions),
        _soft_max_pool(names),
        _soft_max_pool(color_energy),
        _soft_max_pool(np.sqrt(total)),
    ]
    return np.concatenate(parts, axis=1).astype(np.float32)
