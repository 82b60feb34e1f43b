"""How many voxels per output MindDiffuser's decoders should keep at the mini scale (held-out
training images only).

The reference's n_feat values (c 125, z 4000, g 250–350) are for ~11,700 voxels and ~8,900 training
images. This script refits c, z and every g layer on 80% of one subject's training images for a grid of
n_feat and scores the mean Pearson r per output on the other 20% (the test set is never touched), with the
fit time, and writes benchmarks/results/minddiffuser_nfeat.json.

    python benchmarks/minddiffuser_nfeat.py --dataset DS --targets DS/targets.hdf5 [--zoo builtin:insilico-64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from neuraldiffuser.config import load_config
from neuraldiffuser.data import open_dataset
from neuraldiffuser.methods.minddiffuser.decoders import encode_short, training_data
from neuraldiffuser.methods.minddiffuser.masks import column_correlation
from neuraldiffuser.methods.minddiffuser.ridge import VoxelSelectionRidge
from neuraldiffuser.targets.store import TargetStore
from neuraldiffuser.zoo.loader import Components

ROOT = Path(__file__).resolve().parents[1]


def score(x: np.ndarray, y: np.ndarray, fit: np.ndarray, n_feat: int, alpha: float) -> tuple[float, float]:
    t0 = time.perf_counter()
    model = VoxelSelectionRidge(n_feat, alpha).fit(x[fit], y[fit])
    seconds = time.perf_counter() - t0
    r = column_correlation(model.predict(x[~fit]).astype(np.float64), y[~fit].astype(np.float64))
    return float(np.mean(r)), seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--zoo", default="builtin:insilico-64")
    p.add_argument("--subject", default="subj01")
    p.add_argument("--grid", default="25,50,125,300,600,1200")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "minddiffuser_nfeat.json"))
    a = p.parse_args()
    cfg = load_config(
        preset="mini", overrides={"data": {"path": a.dataset, "subject": a.subject}, "zoo": {"path": a.zoo}}
    )
    ds = open_dataset(a.dataset)
    x, images, _ = training_data(cfg, ds.subject(a.subject))
    fit = np.random.default_rng(0).random(len(images)) < 0.8
    store = TargetStore(a.targets)
    c = encode_short(
        Components(cfg.zoo), [ds.captions_of(int(i)) for i in images], cfg.minddiffuser.text_max_length
    ).numpy()
    families = {
        "c": c[:, 1:].reshape(len(c), -1),
        "z": store.get_images("z", images).reshape(len(images), -1),
    }
    g = store.get_images("g", images)
    families.update({f"g{layer}": g[:, layer].reshape(len(g), -1) for layer in range(g.shape[1])})
    grid = [int(v) for v in a.grid.split(",")]
    results = {}
    for name, y in families.items():
        results[name] = {}
        for n in grid:
            r, s = score(x, y, fit, n, cfg.minddiffuser.alpha)
            results[name][n] = {"mean_r": r, "seconds": s}
            print(f"{name:4s} n_feat {n:5d}: mean r {r:.3f}  ({s:.1f} s)", flush=True)
    doc = {
        "dataset": a.dataset,
        "targets": a.targets,
        "subject": a.subject,
        "voxels": int(x.shape[1]),
        "fit_images": int(fit.sum()),
        "held_out_images": int((~fit).sum()),
        "alpha": cfg.minddiffuser.alpha,
        "threads": torch.get_num_threads(),
        "best": {k: max(v, key=lambda n: v[n]["mean_r"]) for k, v in results.items()},
        "results": results,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["best"]))


if __name__ == "__main__":
    main()
