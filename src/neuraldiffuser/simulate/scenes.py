"""Procedural scenes: a patterned background in a named colour and 1–3 coloured shapes.

``generate_scenes(n, seed)`` samples attribute records, renders them (vectorised numpy, anti-aliased
shape masks from signed distances, smooth background patterns with no pixel noise) and captions them.
A record is a complete description of its image: ``render(records, size)`` redraws it exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .captions import describe
from .shapes import SDF, SHAPES

COLORS = {
    "red": (214, 38, 40),
    "orange": (242, 138, 28),
    "yellow": (240, 214, 40),
    "green": (46, 156, 60),
    "blue": (38, 84, 212),
    "purple": (128, 58, 172),
    "pink": (242, 132, 184),
    "brown": (128, 78, 38),
    "white": (244, 244, 244),
    "black": (24, 24, 24),
    "gray": (128, 128, 128),
    "cyan": (48, 200, 212),
}
COLOR_NAMES = tuple(COLORS)
BACKGROUNDS = ("solid", "gradient", "stripes", "checker", "texture")
STRIPE_ORIENTATIONS = (
    ("horizontal", 90.0),
    ("vertical", 0.0),
    ("diagonal", 45.0),
    ("diagonal", 135.0),
)  # name, angle of variation
SIZES = {"small": 0.095, "medium": 0.135, "large": 0.18}  # radius as a fraction of the image width
ROWS = ("top", "middle", "bottom")
COLS = ("left", "center", "right")
CELL_CENTRES = (0.24, 0.5, 0.76)
JITTER = 0.06
COUNT_PROBS = (0.4, 0.35, 0.25)
N_WAVES = 4


@dataclass
class Scenes:
    """Images, their attribute records and captions (index i of each belongs together)."""

    images: np.ndarray  # uint8 (n, size, size, 3)
    records: list[dict]
    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.records)


def _tone(rgb: np.ndarray) -> np.ndarray:
    """The pattern's second tone: a lighter shade of dark colours, a darker shade of light ones."""
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    light = rgb + (1 - rgb) * 0.42
    dark = rgb * 0.6
    return np.where((lum < 0.55)[..., None], light, dark)


def sample_records(n: int, seed: int) -> list[dict]:
    """Attribute records of ``n`` scenes; the same (n, seed) always gives the same records."""
    rng = np.random.default_rng([seed, 0x5CE7E])
    n_colors = len(COLOR_NAMES)
    bg_kind = rng.integers(0, len(BACKGROUNDS), n)
    bg_color = rng.integers(0, n_colors, n)
    orient = rng.integers(0, len(STRIPE_ORIENTATIONS), n)
    period = rng.uniform(0.11, 0.19, n)
    phase = rng.uniform(0, 2 * np.pi, (n, 2))
    grad_angle = rng.uniform(0, 360, n)
    wave_freq = rng.uniform(1.0, 3.5, (n, N_WAVES))
    wave_dir = rng.uniform(0, 2 * np.pi, (n, N_WAVES))
    wave_phase = rng.uniform(0, 2 * np.pi, (n, N_WAVES))
    count = rng.choice([1, 2, 3], size=n, p=COUNT_PROBS)
    cells = np.argsort(rng.random((n, 9)), axis=1)[:, :3]
    shape = rng.integers(0, len(SHAPES), (n, 3))
    color = rng.integers(0, n_colors - 1, (n, 3))
    color += color >= bg_color[:, None]  # never the background's colour
    size = rng.integers(0, len(SIZES), (n, 3))
    jitter = rng.uniform(-JITTER, JITTER, (n, 3, 2))
    rotation = rng.uniform(0, 360, (n, 3))
    size_names = list(SIZES)
    records = []
    for i in range(n):
        kind = BACKGROUNDS[bg_kind[i]]
        bg = {"kind": kind, "color": COLOR_NAMES[bg_color[i]]}
        if kind == "stripes":
            name, angle = STRIPE_ORIENTATIONS[orient[i]]
            bg.update(
                orientation=name,
                angle=angle,
                period=round(float(period[i]), 4),
                phase=round(float(phase[i, 0]), 4),
            )
        elif kind == "checker":
            bg.update(period=round(float(period[i]) * 1.4, 4), phase=[round(float(p), 4) for p in phase[i]])
        elif kind == "gradient":
            bg.update(angle=round(float(grad_angle[i]), 2))
        elif kind == "texture":
            bg.update(
                waves=[
                    [round(float(f), 4), round(float(d), 4), round(float(p), 4)]
                    for f, d, p in zip(wave_freq[i], wave_dir[i], wave_phase[i], strict=True)
                ]
            )
        objects = []
        for j in range(count[i]):
            r, c = divmod(int(cells[i, j]), 3)
            objects.append(
                {
                    "shape": SHAPES[shape[i, j]],
                    "color": COLOR_NAMES[color[i, j]],
                    "size": size_names[size[i, j]],
                    "x": round(CELL_CENTRES[c] + float(jitter[i, j, 0]), 4),
                    "y": round(CELL_CENTRES[r] + float(jitter[i, j, 1]), 4),
                    "rotation": round(float(rotation[i, j]), 2),
                    "row": ROWS[r],
                    "col": COLS[c],
                }
            )
        records.append({"background": bg, "objects": objects})
    return records


def _rgb(names: list[str]) -> np.ndarray:
    return np.array([COLORS[c] for c in names], dtype=np.float32).reshape(-1, 3) / 255.0


def _smooth_square(s: np.ndarray, period_px: np.ndarray) -> np.ndarray:
    """Turn a sinusoid into a square wave whose edges are ~1.5 px wide (anti-aliased, no ringing)."""
    gain = period_px / (1.5 * np.pi)
    return 0.5 + 0.5 * np.clip(s * gain[:, None, None], -1.0, 1.0)


def _background_mix(records: list[dict], X: np.ndarray, Y: np.ndarray, size: int) -> np.ndarray:
    """Per-pixel mix (0 → base colour, 1 → second tone) of every record's background."""
    t = np.zeros((len(records), *X.shape), dtype=np.float32)
    kinds = np.array([r["background"]["kind"] for r in records])
    for kind in ("gradient", "stripes", "checker", "texture"):
        idx = np.flatnonzero(kinds == kind)
        if idx.size == 0:
            continue
        bgs = [records[i]["background"] for i in idx]
        if kind == "gradient":
            a = np.deg2rad([b["angle"] for b in bgs])[:, None, None]
            t[idx] = np.clip(0.5 + 1.1 * ((X - 0.5) * np.cos(a) + (Y - 0.5) * np.sin(a)), 0, 1)
        elif kind == "stripes":
            a = np.deg2rad([b["angle"] for b in bgs])[:, None, None]
            p = np.array([b["period"] for b in bgs])
            ph = np.array([b["phase"] for b in bgs])[:, None, None]
            s = np.sin(2 * np.pi * (X * np.cos(a) + Y * np.sin(a)) / p[:, None, None] + ph)
            t[idx] = _smooth_square(s, p * size)
        elif kind == "checker":
            p = np.array([b["period"] for b in bgs])
            ph = np.array([b["phase"] for b in bgs])
            s = np.sin(2 * np.pi * X / p[:, None, None] + ph[:, 0, None, None]) * np.sin(
                2 * np.pi * Y / p[:, None, None] + ph[:, 1, None, None]
            )
            t[idx] = _smooth_square(s, p * size)
        else:
            w = np.array([b["waves"] for b in bgs], dtype=np.float64)  # (m, waves, 3): freq, direction, phase
            fx, fy = w[..., 0] * np.cos(w[..., 1]), w[..., 0] * np.sin(w[..., 1])
            arg = 2 * np.pi * (fx[..., None, None] * X + fy[..., None, None] * Y) + w[..., 2, None, None]
            t[idx] = np.clip(0.5 + 0.5 * np.cos(arg).sum(axis=1) / np.sqrt(N_WAVES / 2) / 1.6, 0, 1)
    return t


def _draw_objects(img: np.ndarray, records: list[dict], X: np.ndarray, Y: np.ndarray, size: int) -> None:
    """Composite every object, layer by layer, with anti-aliased coverage from its signed distance."""
    flat = [(i, layer, o) for i, r in enumerate(records) for layer, o in enumerate(r["objects"])]
    if not flat:
        return
    scene = np.array([f[0] for f in flat])
    layer = np.array([f[1] for f in flat])
    shape = np.array([f[2]["shape"] for f in flat])
    radius = np.array([SIZES[f[2]["size"]] for f in flat])[:, None, None]
    cx = np.array([f[2]["x"] for f in flat])[:, None, None]
    cy = np.array([f[2]["y"] for f in flat])[:, None, None]
    rot = np.deg2rad([f[2]["rotation"] for f in flat])[:, None, None]
    color = _rgb([f[2]["color"] for f in flat])
    alpha = np.empty((len(flat), *X.shape), dtype=np.float32)
    for name in np.unique(shape):
        k = np.flatnonzero(shape == name)
        dx, dy = X - cx[k], cy[k] - Y  # y up in the shape's frame
        c, s = np.cos(rot[k]), np.sin(rot[k])
        u, v = (c * dx + s * dy) / radius[k], (-s * dx + c * dy) / radius[k]
        dist_px = SDF[name](u, v) * radius[k] * size
        alpha[k] = np.clip(0.5 - dist_px, 0.0, 1.0)
    for lay in range(layer.max() + 1):
        k = np.flatnonzero(layer == lay)
        a = alpha[k][..., None]
        img[scene[k]] = img[scene[k]] * (1 - a) + a * color[k][:, None, None, :]


def render(records: list[dict], size: int = 64, chunk: int = 512) -> np.ndarray:
    """Draw records as uint8 (n, size, size, 3) images."""
    if size < 16:
        raise ValueError(f"image size must be at least 16 px, got {size}")
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    X, Y = np.meshgrid(coords, coords)
    out = np.empty((len(records), size, size, 3), dtype=np.uint8)
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        base = _rgb([r["background"]["color"] for r in part])
        tone = _tone(base).astype(np.float32)
        t = _background_mix(part, X, Y, size)[..., None]
        img = base[:, None, None, :] * (1 - t) + tone[:, None, None, :] * t
        _draw_objects(img, part, X, Y, size)
        out[start : start + chunk] = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return out


def caption_records(records: list[dict], seed: int, k: int = 5) -> list[list[str]]:
    """``k`` captions per record; scene i's phrasing depends on (seed, i) only."""
    return [describe(r, random.Random(f"{seed}:{i}"), k) for i, r in enumerate(records)]


def generate_scenes(n: int, seed: int, size: int = 64, n_captions: int = 5) -> Scenes:
    """``n`` scenes (images, records, captions), deterministic from ``seed``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if n_captions < 3:
        raise ValueError(f"n_captions must be at least 3 (COCO-like variety), got {n_captions}")
    records = sample_records(n, seed)
    return Scenes(render(records, size), records, caption_records(records, seed, n_captions))


def write_scene_dataset(root, n: int, seed: int, size: int = 64, chunk: int = 2048) -> Path:
    """A stimuli-only dataset (generic layout, no subjects): images, captions and records.

    ``open_dataset(root)`` reads its ``.images`` and ``.captions``; ``simulator/scenes.json``
    holds the attribute records. Used to train the mini zoo on the stimulus domain.
    """
    from ..data.layout import write_generic
    from ..utils.io import atomic_write_json
    from ..utils.progress import progress_bar

    records = sample_records(n, seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    with progress_bar("render scenes", n) as bar:
        for start in range(0, n, chunk):
            images[start : start + chunk] = render(records[start : start + chunk], size)
            bar.advance(len(images[start : start + chunk]))
    captions = caption_records(records, seed)
    root = Path(root)
    meta = {"kind": "stimuli", "generator": "neuraldiffuser.simulate.scenes", "seed": seed}
    write_generic(root, images, dict(enumerate(captions)), {}, meta=meta)
    atomic_write_json(root / "simulator" / "scenes.json", records, indent=None)
    return root
