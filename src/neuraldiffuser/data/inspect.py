"""A summary of a dataset: what `neuraldiffuser inspect` prints."""

from __future__ import annotations

from typing import Any

import numpy as np

from .dataset import Dataset


def summarize(ds: Dataset, count_nonfinite: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "root": str(ds.root),
        "layout": ds.layout,
        "images": len(ds.images),
        "image_size": list(ds.images.size),
        "captioned_images": len(ds.captions),
        "subjects": {},
    }
    for name, s in ds.subjects.items():
        t = s.trials
        train = t.split == "train"
        test = ~train
        n_test_img = len(np.unique(t.image[test]))
        reps = np.bincount(np.unique(t.image[test], return_counts=True)[1]) if test.any() else np.array([])
        info = {
            "voxels": s.n_voxels,
            "trials": len(t),
            "sessions": len(s.sessions),
            "train_trials": int(train.sum()),
            "train_images": len(np.unique(t.image[train])),
            "test_trials": int(test.sum()),
            "test_images": n_test_img,
            "test_repeats": {str(k): int(v) for k, v in enumerate(reps) if v},
            "dtype": str(s.betas.dtype),
        }
        if s.roi is not None:
            names, counts = np.unique(s.roi, return_counts=True)
            info["rois"] = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
        if count_nonfinite:
            info["nonfinite"] = int(sum((~np.isfinite(block)).sum() for _, block in s.betas.chunks()))
        out["subjects"][name] = info
    return out
