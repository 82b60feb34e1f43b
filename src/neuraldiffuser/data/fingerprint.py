"""A short fingerprint of a dataset's stimuli, recorded in the files derived from them (target stores)
so that resuming or using them with another dataset is refused instead of silently mixing the two."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .dataset import Dataset

SAMPLE = 16  # images hashed, evenly spaced: enough to tell datasets apart, cheap for NSD's 73k


def dataset_fingerprint(ds: Dataset) -> str:
    """``"<n> images <h>x<w> <hash>"``: the image count and size, and a hash of evenly spaced
    images and all captions.

    Images are hashed as the uint8 arrays the readers return, so both layouts of one dataset agree.
    """
    n = len(ds.images)
    h = hashlib.sha256(f"{n} {ds.images.size}".encode())
    if n:
        for i in np.unique(np.linspace(0, n - 1, min(SAMPLE, n)).astype(np.int64)):
            h.update(np.ascontiguousarray(ds.images.get(int(i))).tobytes())
    h.update(json.dumps({str(k): v for k, v in sorted(ds.captions.items())}, ensure_ascii=False).encode())
    return f"{n} images {ds.images.size[0]}x{ds.images.size[1]} {h.hexdigest()[:16]}"
