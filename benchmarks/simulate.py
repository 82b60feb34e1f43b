"""Simulator cost and signal: wall/CPU time, peak memory and on-disk size of a preset, and what ridge
decoders recover from it (the demo's decoders must identify test images well above chance).

    python benchmarks/simulate.py                    # the mini preset
    python benchmarks/simulate.py --preset small --keep /tmp/small

For each subject, on the 3-repeat-averaged test betas: two-way identification and pixel correlation of a
ridge decoder of 16×16 images (all voxels), mean AUC of attribute groups decoded from higher-visual voxels,
and the median noise ceiling measured per ROI from the test repeats against the configured one.
Writes benchmarks/results/simulate_<preset>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from neuraldiffuser.config.sections.simulate import SimulateConfig
from neuraldiffuser.data import open_dataset
from neuraldiffuser.simulate.design import noise_ceiling
from neuraldiffuser.simulate.presets import HIGHER, NOISE_CEILING
from neuraldiffuser.simulate.run import simulate_dataset
from neuraldiffuser.simulate.semantic import ATTRIBUTES, GROUPS, attribute_vectors
from neuraldiffuser.utils.io import atomic_write_json


def ridge(x_tr, y_tr, x_te, lam):
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    xs, ym = (x_tr - mu) / sd, y_tr.mean(0)
    if len(xs) >= xs.shape[1]:
        w = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ (y_tr - ym))
    else:
        w = xs.T @ np.linalg.solve(xs @ xs.T + lam * np.eye(len(xs)), y_tr - ym)
    return ((x_te - mu) / sd) @ w + ym


def two_way(pred, truth):
    c = np.corrcoef(pred, truth)[: len(pred), len(pred) :]
    return float(np.mean([(c[i, i] > np.delete(c[i], i)).mean() for i in range(len(pred))]))


def auc(score, label):
    pos, neg = score[label > 0.5], score[label < 0.5]
    return float((pos[:, None] > neg[None, :]).mean()) if len(pos) and len(neg) else float("nan")


def signal_report(root: Path) -> dict:
    ds = open_dataset(root)
    records = json.loads((root / "simulator" / "scenes.json").read_text())
    attrs = attribute_vectors(records)
    out = {}
    for name, s in ds.subjects.items():
        rows = s.train_rows()
        x_tr, i_tr = s.read(rows), s.image_of_rows(rows)
        test = s.test_set(3)
        x_te, i_te = s.test_betas(test), test.images
        small = lambda idx: (  # noqa: E731
            ds.images.get(idx)
            .astype(np.float32)
            .reshape(len(idx), 16, 4, 16, 4, 3)
            .mean((2, 4))
            .reshape(len(idx), -1)
        )
        best = max(
            (two_way(p := ridge(x_tr, small(i_tr), x_te, lam), small(i_te)), lam, p)
            for lam in (3e2, 1e3, 3e3)
        )
        pix = float(np.mean([np.corrcoef(best[2][i], small(i_te)[i])[0, 1] for i in range(len(i_te))]))
        higher = np.isin(s.roi, HIGHER)
        groups = {}
        for g in ("shape", "color", "count", "layout", "background"):
            cols = [ATTRIBUTES.index(a) for a in GROUPS[g]]
            pred = ridge(x_tr[:, higher], attrs[i_tr][:, cols], x_te[:, higher], 300.0)
            groups[g] = float(np.nanmean([auc(pred[:, k], attrs[i_te][:, c]) for k, c in enumerate(cols)]))
        nc = noise_ceiling(s.read(np.arange(s.n_trials)), s.trials.image, s.trials.split)
        out[name] = {
            "voxels": s.n_voxels,
            "trials": s.n_trials,
            "pixel16_two_way": best[0],
            "pixel16_ridge_lambda": best[1],
            "pixel16_corr": pix,
            "higher_visual_attribute_auc": groups,
            "noise_ceiling_median_measured": {r: float(np.median(nc[s.roi == r])) for r in NOISE_CEILING},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="mini")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write the dataset here and keep it")
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    root = args.keep or Path(tempfile.mkdtemp()) / "ds"
    if root.exists():
        shutil.rmtree(root)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = simulate_dataset(root, SimulateConfig(preset=args.preset, seed=args.seed))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sizes = {}
    for p in root.rglob("*"):
        if p.is_file():
            key = p.relative_to(root).parts[0]
            sizes[key] = sizes.get(key, 0) + p.stat().st_size
    result = {
        "preset": args.preset,
        "seed": args.seed,
        "summary": summary,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpus": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "disk_mib": {k: round(v / 2**20, 2) for k, v in sorted(sizes.items())},
        "disk_total_mib": round(sum(sizes.values()) / 2**20, 2),
        "signal": signal_report(root),
    }
    print(
        f"{args.preset}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak "
        f"{result['peak_rss_mib']} MiB, {result['disk_total_mib']} MiB on disk"
    )
    print(
        f"{'subject':8} {'voxels':>6} {'trials':>6} {'2-way':>6} {'pixr':>5} "
        + " ".join(f"{g[:6]:>6}" for g in ("shape", "color", "count", "layout", "backgr"))
    )
    for name, r in result["signal"].items():
        a = r["higher_visual_attribute_auc"]
        print(
            f"{name:8} {r['voxels']:6d} {r['trials']:6d} "
            f"{r['pixel16_two_way']:6.3f} {r['pixel16_corr']:5.2f} "
            + " ".join(f"{v:6.3f}" for v in a.values())
        )
    out = Path(__file__).parent / "results" / f"simulate_{args.preset}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    if args.keep is None:
        shutil.rmtree(root.parent)


if __name__ == "__main__":
    main()
