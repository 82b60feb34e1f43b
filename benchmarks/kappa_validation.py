"""Choose the guidance scale κ and fraction η on held-out *training* images, never on the test set.

    python benchmarks/kappa_validation.py --demo runs/demo --work WORK \
        [--kappa 100 --kappa 300 ...] [--strength 0.6 ...] [--holdout 60]

Guidance pulls the image towards the decoded g features, which are noisy, so the κ that is best for true
features (the zoo's own sweep) can be too strong for decoded ones. This picks κ and η the way a
hyperparameter should be picked:

1. hold out ``--holdout`` of the target subject's training images that were shown 3 times, as the test
   images are (``data.holdout_images``), and fine-tune its decoders on the rest (the demo's pretraining
   on the other subjects is reused: it never saw the target subject);
2. decode the held-out images from their 3 trials averaged, as the test set is decoded (`decode --holdout`):
   validation targets with the test set's noise;
3. reconstruct them with κ = 0 and every κ × η of the grid (the `mini` preset otherwise), at each img2img
   strength of ``--strength`` (default: the preset's), and score PixCorr, SSIM and the embedded 2-way
   scores with `neuraldiffuser evaluate` (the validation images are each other's distractors);
4. compare every setting with ``--reference`` (default: the preset's), paired over the images.

Writes benchmarks/results/kappa_validation.json and prints the table, best setting first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def train_held_out(demo: Path, work: Path, config) -> Path:
    """Decoders fine-tuned without the held-out images, on top of the demo's pretraining."""
    from neuraldiffuser.config import save_config
    from neuraldiffuser.training.runner import train_decoders

    run = work / "decoders"
    if (run / "decoders" / "manifest.json").is_file():
        return run
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copytree(demo / "decoders" / "pretrain", run / "pretrain")
    shutil.copytree(demo / "decoders" / "scalers", run / "scalers")
    (run / "scalers" / f"{config.data.subject}.safetensors").unlink()  # refit without the held-out images
    train_decoders(config, run, demo / "targets.hdf5")
    save_config(config, run)
    return run


def score(folder: Path, dataset) -> dict:
    """PixCorr and SSIM of repeat 0, and their mean over the repeats, against the stimuli."""
    from neuraldiffuser.evaluation.metrics import pixcorr, ssim
    from neuraldiffuser.evaluation.preprocess import to_protocol
    from neuraldiffuser.evaluation.recon import read_recon_manifest

    rec = read_recon_manifest(folder)
    real = to_protocol(dataset.images.get(rec.images))
    per_repeat = [
        (pixcorr(real, p), ssim(real, p))
        for p in (to_protocol(rec.load(rec.images, r)) for r in range(rec.repeats))
    ]
    return {
        "kappa": rec.params.get("kappa", 0.0),
        "eta": rec.params.get("eta", 0.0),
        "n": len(rec.images),
        "repeats": rec.repeats,
        "PixCorr": float(per_repeat[0][0].mean()),
        "SSIM": float(per_repeat[0][1].mean()),
        "PixCorr_all_repeats": float(np.mean([p.mean() for p, _ in per_repeat])),
        "SSIM_all_repeats": float(np.mean([s.mean() for _, s in per_repeat])),
    }


SHOWN = ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way"]


def evaluated(folders: list[Path], data: Path, out: Path) -> dict[Path, dict[str, dict]]:
    """`neuraldiffuser evaluate` rows of each folder by policy ('repeat0', 'mean'), with per-image values."""
    from neuraldiffuser.config import load_config
    from neuraldiffuser.evaluation.runner import run_evaluation

    run_evaluation(
        folders, data, load_config("mini", overrides={"evaluate": {"metrics": SHOWN}}), out
    )  # `evaluate --preset mini --metrics ...`
    found: dict[Path, dict[str, dict]] = {}
    for row in json.loads((out / "metrics.json").read_text())["rows"]:
        found.setdefault(Path(row["recon_dir"]).resolve(), {})[row["policy"]] = row
    return found


def table_row(strength: float, rows: dict[str, dict]) -> dict:
    """Repeat 0 and the mean over repeats of each shown metric, for one setting."""
    one, mean = rows["repeat0"], rows["mean"]
    return {
        "strength": strength,
        "kappa": one["params"].get("kappa", 0.0),
        "eta": one["params"].get("eta", 0.0),
        "n": one["n_images"],
        "repeats": one["repeats"],
        **{k: one["values"][k] for k in SHOWN},
        **{f"{k}_all_repeats": mean["values"][k] for k in SHOWN},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--demo", required=True, type=Path, help="A finished demo folder (data/, targets.hdf5, decoders/)."
    )
    ap.add_argument("--work", required=True, type=Path, help="Working folder (resumable).")
    ap.add_argument(
        "--kappa",
        type=float,
        action="append",
        default=None,
        help="κ grid (repeatable; default 30, 100, 300, 1000).",
    )
    ap.add_argument(
        "--eta", type=float, action="append", default=None, help="η grid (repeatable; default 0.2, 0.4)."
    )
    ap.add_argument(
        "--strength",
        type=float,
        action="append",
        default=None,
        help="img2img strength grid (repeatable; default: the preset's sampler.strength).",
    )
    ap.add_argument(
        "--reference",
        default=None,
        help="strength,κ,η the others are compared with, paired over images (default: the preset's).",
    )
    ap.add_argument(
        "--holdout",
        type=int,
        default=60,
        help="Training images held out for validation (shown 3 times each).",
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kappa_validation.json")
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")

    from neuraldiffuser.config import load_config
    from neuraldiffuser.evaluation.compare import compare_rows
    from neuraldiffuser.targets.store import TargetStore
    from neuraldiffuser.training.decode import decode_holdout

    t0 = time.perf_counter()
    data = args.demo.resolve() / "data"
    config = load_config(
        "mini",
        overrides={
            "data": {"path": str(data), "holdout_images": args.holdout},
            "train": {"ridge": False, "tensorboard": False},
        },
    )
    args.work.mkdir(parents=True, exist_ok=True)
    run = train_held_out(args.demo.resolve(), args.work, config)
    decoded = args.work / "decoded_holdout.hdf5"
    if not decoded.is_file():
        decode_holdout(config, run, decoded)
    images = TargetStore(decoded).image
    kappas, etas = args.kappa or [30.0, 100.0, 300.0, 1000.0], args.eta or [0.2, 0.4]
    grid = {"kappa": [*kappas, 0.0], "eta": etas}  # κ 0: one unguided run
    from neuraldiffuser.sampling.processes import reconstruct_in_processes

    rows, by_setting = [], {}
    for strength in args.strength or [config.sampler.strength]:
        recon = args.work / (
            "recon" if strength == config.sampler.strength else f"recon_strength={strength:g}"
        )
        cfg = config.model_copy(
            deep=True
        )  # in process: `reconstruct --repeats R --set sampler.strength=S` on the run's config
        cfg.sampler = cfg.sampler.model_copy(update={"repeats": args.repeats, "strength": strength})
        reconstruct_in_processes(decoded, recon, cfg, args.workers, dataset=data, sweep=grid)
        folders = sorted(f.parent.resolve() for f in recon.rglob("manifest.json"))
        for rows_of in evaluated(folders, data, args.work / f"metrics_strength={strength:g}").values():
            row = table_row(strength, rows_of)
            rows.append(row)
            by_setting[row["strength"], row["kappa"], row["eta"]] = rows_of["mean"]
    s = config.sampler
    ref_key = (
        tuple(float(v) for v in args.reference.split(",")) if args.reference else (s.strength, s.kappa, s.eta)
    )
    if ref_key in by_setting:  # paired over images, per-image values averaged over repeats
        for row in rows:
            diffs = compare_rows(
                by_setting[row["strength"], row["kappa"], row["eta"]], by_setting[ref_key], SHOWN
            )
            row["vs_reference"] = {k: {"mean": d["mean"], "ci95": d["ci95"]} for k, d in diffs.items()}
    rows.sort(key=lambda r: -(r["SSIM"] + r["PixCorr"]))
    result = {
        "demo": str(args.demo),
        "subject": config.data.subject,
        "validation": f"{len(images)} held-out training images, 3 trials each",
        "held_out_images": images.tolist(),
        "n_images": len(images),
        "reference": list(ref_key),
        "repeats": args.repeats,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.path.insert(0, str(Path(__file__).parent))
    from per_image import compact_row, write_per_image

    keep = [compact_row(r, strength=k[0], kappa=k[1], eta=k[2]) for k, r in by_setting.items()]
    write_per_image(
        args.out.with_name(args.out.stem + "_per_image.json"),
        keep,
        benchmark="kappa_validation.py",
        repeats=args.repeats,
    )
    print(
        f"{len(images)} held-out training images of {config.data.subject} "
        "(3 trials each; decoders fine-tuned without them)"
    )
    print(
        "| strength | κ | η | PixCorr | SSIM | mini-CLIP 2-way | "
        "EffNet-Lite0 2-way | PixCorr, all repeats | SSIM, all repeats |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['strength']:g} | {r['kappa']:g} | {r['eta']:g} | {r['PixCorr']:.3f} | "
            f"{r['SSIM']:.3f} | {r['mini-CLIP 2-way']:.3f} | {r['EffNet-Lite0 2-way']:.3f} "
            f"| {r['PixCorr_all_repeats']:.3f} | {r['SSIM_all_repeats']:.3f} |"
        )
    if "vs_reference" in rows[0]:
        print(
            f"\nminus strength {ref_key[0]:g}, κ {ref_key[1]:g}, η "
            f"{ref_key[2]:g}, paired over images (all repeats; mean ± 95%):"
        )
        for r in rows:
            cells = " | ".join(
                f"{d['mean']:+.3f} ± {d['ci95'][1] - d['mean']:.3f}" for d in r["vs_reference"].values()
            )
            print(f"| {r['strength']:g} | {r['kappa']:g} | {r['eta']:g} | {cells} |")


if __name__ == "__main__":
    main()
