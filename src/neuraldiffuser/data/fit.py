"""Between the stimulus' own size and mode and the diffusion stack's square RGB canvas (docs/own-data.md).

Policy, both ways exact inverses up to resampling:
- **to the stack**: a non-square stimulus is padded to a square (its own edge pixels repeated, centred), then
  resized with Lanczos to the stack's side; greyscale is carried as three equal channels.
- **to the stimulus**: the stack's image is resized (Lanczos) back to the padded square, the padding is
  cropped away, and greyscale stimuli get the luminance (ITU-R 601, PIL's "L") of the result.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def pad_box(height: int, width: int) -> tuple[int, int, int]:
    """(side, top, left) of the centred square a (height, width) stimulus is padded into."""
    side = max(height, width)
    return side, (side - height) // 2, (side - width) // 2


def to_stack(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 (N, H, W, 3) stimuli → uint8 (N, side, side, 3)."""
    n, h, w, _ = images.shape
    sq, top, left = pad_box(h, w)
    if (h, w) != (sq, sq):
        images = np.pad(images, ((0, 0), (top, sq - h - top), (left, sq - w - left), (0, 0)), mode="edge")
    if sq == side:
        return np.ascontiguousarray(images)
    return np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.LANCZOS)) for im in images])


def to_stimulus(images: np.ndarray, size: tuple[int, int], mode: str = "RGB") -> np.ndarray:
    """uint8 (N, S, S, 3) stack images → uint8 (N, H, W) for mode 'L' or (N, H, W, 3) for 'RGB'."""
    h, w = size
    sq, top, left = pad_box(h, w)
    out = []
    for im in images:
        pil = Image.fromarray(np.asarray(im, dtype=np.uint8))
        if pil.size != (sq, sq):
            pil = pil.resize((sq, sq), Image.LANCZOS)
        pil = pil.crop((left, top, left + w, top + h))
        out.append(np.asarray(pil.convert("L") if mode == "L" else pil.convert("RGB")))
    return np.stack(out)
