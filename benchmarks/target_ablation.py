"""Which decoded target limits the reconstructions? Swap one decoded target for the true one at a time.

    python benchmarks/target_ablation.py --demo runs/demo --work WORK [--limit 50]

The oracle (every target true) sits far above the decoded reconstructions on the 2-way scores. To find
which decoder the gap belongs to, each of z, c and g is replaced by its true value while the other two stay
decoded, and each variant is reconstructed with the preset's sampler and scored by `neuraldiffuser
evaluate` on the same test images (repeat 0). Rows: all decoded, one true target each, all true.

Writes benchmarks/results/target_ablation.json and prints the table.
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
SHOWN = ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way"]


def swapped_store(
    decoded: Path, targets: Path, true_keys: tuple[str, ...], out: Path, limit: int | None
) -> Path:
    """The decoded store's first ``limit`` images with ``true_keys`` replaced by the extracted targets."""
    from neuraldiffuser.targets.store import TargetStore, write_store

    dec, truth = TargetStore(decoded), TargetStore(targets)
    rows = np.arange(len(dec) if limit is None else min(limit, len(dec)))
    images = dec.image[rows]
    values = {
        k: (truth.get_images(k, images) if k in true_keys else dec.get(k, rows)).astype(
            dec.get(k, rows[:1]).dtype
        )
        for k in dec.keys
    }
    return write_store(out, images, values, {**dict(dec.attrs), "true_targets": list(true_keys)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--demo", required=True, type=Path, help="A finished demo folder (data/, targets.hdf5, decoded.hdf5)."
    )
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--limit", type=int, default=50, help="first N test images")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "target_ablation.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    from neuraldiffuser.config import load_config
    from neuraldiffuser.evaluation.runner import run_evaluation
    from neuraldiffuser.sampling.processes import reconstruct_in_processes

    demo = args.demo.resolve()
    data, decoded, targets = demo / "data", demo / "decoded.hdf5", demo / "targets.hdf5"
    args.work.mkdir(parents=True, exist_ok=True)
    variants = {
        "all decoded": (),
        "true z": ("z",),
        "true c": ("c",),
        "true g": ("g",),
        "all true": ("z", "c", "g"),
    }
    config = load_config(
        "mini", overrides={"sampler": {"repeats": 1}}
    )  # in process: what `reconstruct --preset mini --repeats 1` does
    folders = {}
    for name, keys in variants.items():
        tag = "-".join(keys) or "none"
        store = swapped_store(decoded, targets, keys, args.work / f"true={tag}.hdf5", args.limit)
        (folders[name],) = reconstruct_in_processes(
            store, args.work / f"recon_true={tag}", config, args.workers, dataset=data
        )
    metrics_dir = args.work / "metrics"
    run_evaluation(list(folders.values()), data, load_config("mini"), metrics_dir)
    doc = json.loads((metrics_dir / "metrics.json").read_text())
    rows = []
    for name, folder in folders.items():
        # every variant has the same method and setting, so match the evaluated row by its folder
        row = next(
            r for r in doc["rows"] if r["policy"] == "repeat0" and Path(r["recon_dir"]) == folder.resolve()
        )
        rows.append(
            {
                "variant": name,
                "true_targets": list(variants[name]),
                **{k: row["values"].get(k) for k in SHOWN},
            }
        )
    result = {
        "demo": str(args.demo),
        "n_images": args.limit,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.path.insert(0, str(Path(__file__).parent))
    from per_image import compact_row, write_per_image

    names = {folder.resolve(): name for name, folder in folders.items()}
    keep = [
        compact_row(r, variant=names[Path(r["recon_dir"])])
        for r in doc["rows"]
        if r["policy"] == "repeat0" and Path(r.get("recon_dir", "")) in names
    ]
    write_per_image(
        args.out.with_name(args.out.stem + "_per_image.json"),
        keep,
        benchmark="target_ablation.py",
        n_images=args.limit,
    )
    print(f"{args.limit} test images, the mini preset's sampler, repeat 0")
    print("| targets | " + " | ".join(SHOWN) + " |\n|---|" + "---|" * len(SHOWN))
    for r in rows:
        print(
            f"| {r['variant']} | "
            + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else "—" for k in SHOWN)
            + " |"
        )


if __name__ == "__main__":
    main()
