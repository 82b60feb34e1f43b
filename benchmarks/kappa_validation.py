"""Choose the guidance scale κ and fraction η on held-out *training* images, never on the test set.

    python benchmarks/kappa_validation.py --demo runs/demo --work WORK [--kappa 100 --kappa 300 ...] [--strength 0.6 ...] [--limit 60]

Guidance pulls the image towards the decoded g features, which are noisy, so the κ that is best for true
features (the zoo's own sweep) can be too strong for decoded ones. This picks κ and η the way a
hyperparameter should be picked:

1. fine-tune the target subject's decoders on all of its sessions but the last (the demo's pretraining
   on the other subjects is reused: it never saw the target subject);
2. decode the images first shown in that last session (voxel-averaged over its trials), which neither the
   decoders nor the test set contain;
3. reconstruct them with κ = 0 and every κ × η of the grid (the `mini` preset otherwise), at each img2img
   strength of ``--strength`` (default: the preset's), and score PixCorr and SSIM with the evaluation
   protocol's functions against the stimuli, and the embedded 2-way scores with `neuraldiffuser evaluate`
   (the validation images are each other's distractors).

Writes benchmarks/results/kappa_validation.json and prints the table, best setting first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def validation_set(subj, train_sessions: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(images, betas) of the images first seen after the first ``train_sessions`` sessions, trial-averaged."""
    seen = set(subj.train_images(train_sessions).tolist())
    later = np.isin(subj.trials.session, subj.sessions[train_sessions:]) & (subj.trials.split == "train")
    rows, images = subj.trials.row[later], subj.trials.image[later]
    order = [im for im in dict.fromkeys(images.tolist()) if im not in seen][:limit]
    betas = np.stack([subj.read(np.sort(rows[images == im])).mean(axis=0) for im in order])
    return np.asarray(order, dtype=np.int64), betas


def train_held_out(demo: Path, work: Path, config) -> Path:
    """Decoders fine-tuned without the last session, on top of the demo's pretraining."""
    from neuraldiffuser.training.runner import train_decoders

    run = work / "decoders"
    if (run / "decoders" / "manifest.json").is_file():
        return run
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copytree(demo / "decoders" / "pretrain", run / "pretrain")
    shutil.copytree(demo / "decoders" / "scalers", run / "scalers")
    (run / "scalers" / f"{config.data.subject}.safetensors").unlink()
    train_decoders(config, run, demo / "targets.hdf5")
    return run


def score(folder: Path, dataset) -> dict:
    """PixCorr and SSIM of repeat 0, and their mean over the repeats, against the stimuli."""
    from neuraldiffuser.evaluation.metrics import pixcorr, ssim
    from neuraldiffuser.evaluation.preprocess import to_protocol
    from neuraldiffuser.evaluation.recon import read_manifest

    rec = read_manifest(folder)
    real = to_protocol(dataset.images.get(rec.images))
    per_repeat = [(pixcorr(real, p), ssim(real, p)) for p in (to_protocol(rec.load(rec.images, r)) for r in range(rec.repeats))]
    return {
        "kappa": rec.params.get("kappa", 0.0), "eta": rec.params.get("eta", 0.0), "n": len(rec.images), "repeats": rec.repeats,
        "PixCorr": float(per_repeat[0][0].mean()), "SSIM": float(per_repeat[0][1].mean()),
        "PixCorr_all_repeats": float(np.mean([p.mean() for p, _ in per_repeat])),
        "SSIM_all_repeats": float(np.mean([s.mean() for _, s in per_repeat])),
    }


TWO_WAY = ["mini-CLIP 2-way", "EffNet-Lite0 2-way"]


def two_way_scores(folders: list[Path], data: Path, out: Path) -> dict[Path, dict]:
    """The embedded 2-way scores of each folder (repeat 0, and the mean over repeats), by `neuraldiffuser evaluate`."""
    subprocess.run([sys.executable, "-m", "neuraldiffuser.cli.main", "evaluate", *map(str, folders), "--truth", str(data),
                    "-o", str(out), "--preset", "mini", "--metrics", ",".join(TWO_WAY)], check=True)
    found: dict[Path, dict] = {}
    for row in json.loads((out / "metrics.json").read_text())["rows"]:
        suffix = "" if row["policy"] == "repeat0" else "_all_repeats"
        found.setdefault(Path(row["recon_dir"]).resolve(), {}).update({f"{k}{suffix}": row["values"][k] for k in TWO_WAY})
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", required=True, type=Path, help="A finished demo folder (data/, targets.hdf5, decoders/).")
    ap.add_argument("--work", required=True, type=Path, help="Working folder (resumable).")
    ap.add_argument("--kappa", type=float, action="append", default=None, help="κ grid (repeatable; default 30, 100, 300, 1000).")
    ap.add_argument("--eta", type=float, action="append", default=None, help="η grid (repeatable; default 0.2, 0.4).")
    ap.add_argument("--strength", type=float, action="append", default=None,
                    help="img2img strength grid (repeatable; default: the preset's sampler.strength).")
    ap.add_argument("--limit", type=int, default=60, help="Validation images (first seen in the held-out session).")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kappa_validation.json")
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")

    from neuraldiffuser.config import load_config
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.training.decode import decode_betas

    t0 = time.perf_counter()
    data = args.demo.resolve() / "data"
    ds = open_dataset(data)
    base = load_config("mini", overrides={"data": {"path": str(data)}, "train": {"ridge": False, "tensorboard": False}})
    subj = ds.subject(base.data.subject)
    keep = len(subj.sessions) - 1
    config = base.model_copy(update={"data": base.data.model_copy(update={"sessions": keep})})
    args.work.mkdir(parents=True, exist_ok=True)
    run = train_held_out(args.demo.resolve(), args.work, config)
    images, betas = validation_set(subj, keep, args.limit)
    decoded = decode_betas(config, run, betas, images, args.work / "decoded_validation.hdf5",
                           attrs={"validation": f"images first seen in sessions after the first {keep}"})
    kappas, etas = args.kappa or [30.0, 100.0, 300.0, 1000.0], args.eta or [0.2, 0.4]
    grid = [*sum((["--kappa", str(k)] for k in [*kappas, 0.0]), []), *sum((["--eta", str(e)] for e in etas), [])]  # κ 0: one unguided run
    rows = []
    for strength in args.strength or [base.sampler.strength]:
        recon = args.work / ("recon" if strength == base.sampler.strength else f"recon_strength={strength:g}")
        subprocess.run([sys.executable, "-m", "neuraldiffuser.cli.main", "reconstruct", str(decoded), *grid, "-o", str(recon),
                        "--dataset", str(data), "--repeats", str(args.repeats), "--workers", str(args.workers), "--preset", "mini",
                        "--set", f"sampler.strength={strength}"], check=True)
        folders = sorted(f.parent.resolve() for f in recon.rglob("manifest.json"))
        two_way = two_way_scores(folders, data, args.work / f"metrics_strength={strength:g}")
        rows += [{"strength": strength, **score(f, ds), **two_way[f]} for f in folders]
    rows.sort(key=lambda r: -(r["SSIM"] + r["PixCorr"]))
    result = {"demo": str(args.demo), "subject": base.data.subject, "train_sessions": keep, "n_images": len(images),
              "repeats": args.repeats, "rows": rows, "wall_seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(images)} validation images of {base.data.subject} (decoders fine-tuned on its first {keep} sessions)")
    print("| strength | κ | η | PixCorr | SSIM | mini-CLIP 2-way | EffNet-Lite0 2-way | PixCorr, all repeats | SSIM, all repeats |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strength']:g} | {r['kappa']:g} | {r['eta']:g} | {r['PixCorr']:.3f} | {r['SSIM']:.3f} | {r['mini-CLIP 2-way']:.3f} "
              f"| {r['EffNet-Lite0 2-way']:.3f} | {r['PixCorr_all_repeats']:.3f} | {r['SSIM_all_repeats']:.3f} |")


if __name__ == "__main__":
    main()
