"""The authors' released NSD reconstructions, scored: does guidance raise detail fidelity
and repeat consistency?

HaoyyLi/NeuralDiffuser, commit 9948378, holds subject 1's 982 NSD test images as strips of 768 × 128 px
(6 tiles of 128²: the stimulus, then 5 repeats), unguided (``recon/0.0``) and guided with κ = 5e5, η = 0.2
(``recon/500000.0/0.2``). Extract them outside this repository (they are NSD/COCO images: never commit them):

    git --git-dir=<clone>/.git archive 9948378 recon/0.0 recon/500000.0/0.2 | tar -x -C /data/released_nsd
    python benchmarks/released_nsd.py --strips-root /data/released_nsd [--limit N] [--work /tmp/released_nsd]

On a shared CPU, score the two folders in parallel first (``--only unguided`` and ``--only guided``, same
``--work``); the run without ``--only`` then reads both from the cache.

Scores both folders with ``evaluate-images --strips 6`` (truth = the strips' stimulus tile): PixCorr, SSIM,
EffNet-Lite0 2-way and distance (real ImageNet weights) and Repeat SSIM, plus any paper metric whose weights
are in the local caches; prints guided − unguided paired over images (mean and 95% interval) for repeat 0 and
the mean over repeats; writes benchmarks/results/released_nsd.json with the per-image values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from neuraldiffuser.config import load_config, parse_overrides
from neuraldiffuser.evaluation.images import ImageScoring, evaluate_images
from neuraldiffuser.utils.io import atomic_write_json

ROOT = Path(__file__).resolve().parent
FOLDERS = {"unguided": ("0.0",), "guided": ("500000.0", "0.2")}
PARAMS = {"unguided": {"kappa": 0.0, "eta": 0.0}, "guided": {"kappa": 5e5, "eta": 0.2}}
SOURCE = {
    "repository": "github.com/HaoyyLi/NeuralDiffuser",
    "commit": "9948378",
    "folders": ["recon/0.0", "recon/500000.0/0.2"],
    "subject": "subj01",
    "strip": "768x128 px: stimulus tile then 5 repeats, 128x128 each",
}
# the paper's networks whose weights this machine may lack are still requested; mini-CLIP
# (in-silico domain) is left out
METRICS = [
    "PixCorr",
    "SSIM",
    "AlexNet(2)",
    "AlexNet(5)",
    "InceptionV3",
    "CLIP",
    "EffNet-B",
    "SwAV",
    "EffNet-Lite0 2-way",
    "EffNet-Lite0 dist",
    "Repeat SSIM",
]


def find_folder(root: Path, parts: tuple[str, ...]) -> Path:
    for base in (root, root / "recon"):
        if base.joinpath(*parts).is_dir():
            return base.joinpath(*parts)
    sys.exit(
        f"error: {root}: no {'/'.join(parts)} (or recon/{'/'.join(parts)}) "
        "folder — extract the strips as the docstring shows"
    )


def limited(folder: Path, limit: int | None, work: Path) -> Path | None:
    """An index file with the first ``limit`` strips (None: all of them)."""
    if limit is None:
        return None
    names = sorted(int(p.stem) for p in folder.glob("*.png"))[:limit]
    path = work / f"first_{limit}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(map(str, names)) + "\n")
    return path


def stimulus_agreement(folders: list[Path], images: list[int]) -> dict:
    """How far the two folders' stimulus tiles differ (they were rendered per run): per-image
    PixCorr and max |Δ|."""
    import numpy as np

    from neuraldiffuser.evaluation import metrics
    from neuraldiffuser.evaluation.imagefolders import scan_folder
    from neuraldiffuser.evaluation.preprocess import to_protocol

    a, b = (scan_folder(f, 6, 0, images) for f in folders)
    r, dmax = [], 0
    for start in range(0, len(images), 64):
        part = images[start : start + 64]
        ta, tb = a.load_truth(part), b.load_truth(part)
        dmax = max(dmax, int(np.abs(ta.astype(int) - tb.astype(int)).max()))
        r.append(metrics.pixcorr(to_protocol(ta), to_protocol(tb)))
    r = np.concatenate(r)
    return {
        "pixcorr_mean": float(r.mean()),
        "pixcorr_min": float(r.min()),
        "max_abs_uint8": dmax,
        "note": "each folder is scored against its own stimulus tiles; they differ by re-encoding noise only",
    }


def summarize(doc: dict, seconds: float, limit: int | None) -> dict:
    rows = {(r["setting"], "mean" if r["policy"] == "mean" else "repeat0"): r for r in doc["rows"]}
    out = {
        "source": SOURCE,
        "params": PARAMS,
        "seconds": round(seconds, 1),
        "n_images": doc["protocol"]["n_images"],
        "reduced": f"first {limit} strips only (--limit)" if limit else None,
        "protocol": doc["protocol"],
        "unavailable": {k: v["unavailable"] for k, v in doc["metrics"].items() if v.get("unavailable")},
        "values": {f"{s}/{p}": r["values"] for (s, p), r in rows.items()},
        "guided_minus_unguided": {
            ("mean" if c["policy"] == "mean" else "repeat0"): c["differences"] for c in doc["comparisons"]
        },
        "per_repeat": {s: r.get("per_repeat") for (s, p), r in rows.items() if p == "mean"},
        "images": rows[("unguided", "repeat0")]["images"],
        "per_image": {f"{s}/{p}": r["per_image"] for (s, p), r in rows.items()},
        "metrics_json": str(Path(doc["out_dir"]) / "metrics.json"),
    }
    return out


def print_table(res: dict) -> None:
    names = [m for m in METRICS if m not in res["unavailable"]]
    print(
        "\nreleased NeuralDiffuser reconstructions, subj01, "
        f"{res['n_images']} images ({res['seconds']:.0f} s)"
    )
    print(f"{'setting':<22}" + "".join(f"{n:>20}" for n in names))
    for key, vals in res["values"].items():
        print(f"{key:<22}" + "".join(f"{vals[n]:>20.4f}" for n in names))
    for policy, diffs in res["guided_minus_unguided"].items():
        print(
            f"{'guided − unguided ' + policy:<22}"
            + "".join(
                f"{diffs[n]['mean']:>+9.4f} ±{(diffs[n]['ci95'][1] - diffs[n]['mean']):.4f}"
                if n in diffs
                else f"{'':>20}"
                for n in names
            )
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--strips-root",
        type=Path,
        required=True,
        help="folder holding 0.0/ and 500000.0/0.2/ (or recon/0.0, ...)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/released_nsd_eval"),
        help="metrics.json, report.html and caches",
    )
    p.add_argument("--limit", type=int, default=None, help="score only the first N strips")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument(
        "--only",
        choices=list(FOLDERS),
        help="score one folder into the cache (to run both in parallel), write no results",
    )
    p.add_argument("--results", type=Path, default=ROOT / "results" / "released_nsd.json")
    args = p.parse_args(argv)

    cache = f"evaluate.cache_dir={args.work / '.cache'}"
    config = load_config(
        preset="mini", overrides=parse_overrides([f"evaluate.metrics={METRICS}", cache, *args.overrides])
    )
    labels = [args.only] if args.only else list(FOLDERS)
    folders = [find_folder(args.strips_root, FOLDERS[k]) for k in labels]
    opts = ImageScoring(
        strips=6,
        truth_tile=0,
        labels=labels,
        method="NeuralDiffuser (released)",
        baseline=None if args.only else "unguided",
        subset=str(limited(folders[0], args.limit, args.work)) if args.limit else None,
        subject="subj01",
    )
    start = time.time()
    doc = evaluate_images(
        folders, "strips", config, args.work / (args.only or ""), opts, report=not args.only
    )
    if args.only:
        return 0  # the rows are in the cache; the run without --only reads them
    res = summarize(doc, time.time() - start, args.limit)
    res["stimulus_tiles_unguided_vs_guided"] = stimulus_agreement(folders, res["images"])
    atomic_write_json(args.results, res)
    print_table(res)
    print(f"\nwrote {args.results}; report {doc.get('report')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
