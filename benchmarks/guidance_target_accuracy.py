"""How accurate must the decoded g be for guidance to raise SSIM? A dose–response test on the test images.

    python benchmarks/guidance_target_accuracy.py --demo runs/demo --work WORK [--alpha 0 --alpha 0.5 ...]

Guidance with the *true* g raises SSIM; with the decoded g it can lower it. To show that target accuracy
is the cause, c and z stay decoded while g is blended between the decoded and the true features,
g_α = α·g_true + (1 − α)·g_decoded, and each blend is reconstructed with the guided sampler; κ = 0 (which
ignores g) is the common baseline. Reported per α: the mean per-image correlation of g_α with the true g,
and PixCorr and SSIM against the stimuli. This is analysis, not tuning: nothing here sets a default.

Writes benchmarks/results/guidance_target_accuracy.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kappa_validation import score  # noqa: E402  (the same scoring as the κ validation)


def blend_store(
    decoded: Path, targets: Path, alpha: float, out: Path, limit: int | None
) -> tuple[Path, float]:
    """A copy of the decoded store with g replaced by the α-blend; returns it and r(g_α, g_true)."""
    from neuraldiffuser.evaluation.metrics import pearson_rows
    from neuraldiffuser.targets.store import TargetStore, write_store

    dec, truth = TargetStore(decoded), TargetStore(targets)
    rows = np.arange(len(dec) if limit is None else min(limit, len(dec)))
    images = dec.image[rows]
    values = {k: dec.get(k, rows) for k in dec.keys}
    true_g = truth.get_images("g", images).astype(np.float32)
    g = alpha * true_g + (1 - alpha) * values["g"].astype(np.float32)
    values["g"] = g.astype(values["g"].dtype)
    r = float(
        np.mean(
            [
                pearson_rows(true_g[:, i].reshape(len(g), -1), g[:, i].reshape(len(g), -1)).mean()
                for i in range(g.shape[1])
            ]
        )
    )
    return write_store(out, images, values, {**dict(dec.attrs), "g_blend_alpha": alpha}), r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--demo", required=True, type=Path, help="A finished demo folder (data/, targets.hdf5, decoded.hdf5)."
    )
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument(
        "--alpha",
        type=float,
        action="append",
        default=None,
        help="blend weights of the true g (default 0, 0.5, 0.75, 1).",
    )
    ap.add_argument("--kappa", type=float, default=300.0)
    ap.add_argument("--eta", type=float, default=0.4)
    ap.add_argument("--limit", type=int, default=50, help="first N test images")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "guidance_target_accuracy.json"
    )
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    from neuraldiffuser.data import open_dataset

    t0 = time.perf_counter()
    demo = args.demo.resolve()
    data, decoded, targets = demo / "data", demo / "decoded.hdf5", demo / "targets.hdf5"
    ds = open_dataset(data)
    args.work.mkdir(parents=True, exist_ok=True)
    from neuraldiffuser.config import load_config
    from neuraldiffuser.sampling.processes import reconstruct_in_processes

    config = load_config(
        "mini", overrides={"sampler": {"repeats": args.repeats}}
    )  # in process: `reconstruct --preset mini`
    rows = []
    for alpha in args.alpha or [0.0, 0.5, 0.75, 1.0]:
        store, r = blend_store(decoded, targets, alpha, args.work / f"g_alpha={alpha:g}.hdf5", args.limit)
        out = args.work / f"alpha={alpha:g}"
        settings = [("guided", {"kappa": [args.kappa], "eta": [args.eta]})] + (
            [("unguided", {"kappa": [0.0]})] if alpha == 0 else []
        )
        for name, sweep in settings:
            (folder,) = reconstruct_in_processes(store, out, config, args.workers, dataset=data, sweep=sweep)
            rows.append(
                {
                    "alpha": alpha,
                    "g_r_image": r if name == "guided" else None,
                    "setting": name,
                    **score(folder, ds),
                }
            )
    result = {
        "demo": str(args.demo),
        "kappa": args.kappa,
        "eta": args.eta,
        "n_images": args.limit,
        "repeats": args.repeats,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"κ {args.kappa:g}, η {args.eta:g}; c and z decoded; g "
        f"= α·true + (1 − α)·decoded; {args.limit} test images"
    )
    print("| g | r(g, true g) | PixCorr | SSIM | SSIM, all repeats |\n|---|---|---|---|---|")
    for r in rows:
        label = "none (κ 0)" if r["setting"] == "unguided" else f"α = {r['alpha']:g}"
        corr = "—" if r["g_r_image"] is None else f"{r['g_r_image']:.3f}"
        print(f"| {label} | {corr} | {r['PixCorr']:.3f} | {r['SSIM']:.3f} | {r['SSIM_all_repeats']:.3f} |")


if __name__ == "__main__":
    main()
