"""Does g guidance help? Guided (κ > 0) vs unguided (κ = 0) reconstructions on the in-silico benchmark.

Reconstructs the test images from the true targets (oracle: the method's upper bound) and from the decoded
targets, with κ = 0 and each given κ > 0 at η, then scores them with the evaluation stage: SSIM and PixCorr
against the stimuli (mean over repeats and repeat 0) and Repeat SSIM, the mean SSIM between every pair of an
image's R repeats (the repeat-consistency score). The paper's claim is that guidance raises detail fidelity
(SSIM, PixCorr) and consistency (Repeat SSIM); semantics are checked with the 2-way metrics of `evaluate`.

    python benchmarks/guidance_insilico.py --dataset DS --targets targets.hdf5 --decoded runs/decode \
        --out /tmp/guidance [--kappa 3e5 --kappa 3e4] [--eta 0.2] [--limit 100] \
        [--preset mini] [--set k=v ...]

Writes OUT/recon/, OUT/eval/metrics.json and benchmarks/results/guidance_insilico.json; prints a table.
Reconstruction resumes, so a stopped run can be started again with the same command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from neuraldiffuser.config import load_config, parse_overrides
from neuraldiffuser.sampling.runner import Shard, make_job, reconstruct
from neuraldiffuser.utils.io import atomic_write_json

ROOT = Path(__file__).resolve().parent
METRICS = ["PixCorr", "SSIM", "Repeat SSIM"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="in-silico dataset (stimuli, test set)")
    p.add_argument("--targets", required=True, help="true targets.hdf5 (extract)")
    p.add_argument("--decoded", help="decoded.hdf5 or its decode run folder (skipped if absent)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--kappa",
        type=float,
        action="append",
        help="κ > 0 to compare with κ = 0 (repeatable; default sampler.kappa)",
    )
    p.add_argument("--eta", type=float, default=None)
    p.add_argument("--limit", type=int, default=None, help="first N test images")
    p.add_argument("--preset", default="mini")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "guidance_insilico.json")
    args = p.parse_args(argv)

    overrides = parse_overrides(args.overrides)
    overrides.setdefault("data", {})["path"] = args.dataset
    config = load_config(preset=args.preset, overrides=overrides)
    kappas = [0.0, *(args.kappa or [config.sampler.kappa])]
    sweep = {"kappa": kappas, "eta": [args.eta if args.eta is not None else config.sampler.eta]}
    recon = args.out / "recon"
    start = time.time()
    jobs = [make_job(args.decoded, config, oracle=args.targets, limit=args.limit)]
    if args.decoded:
        jobs.append(make_job(args.decoded, config, limit=args.limit))
    for job in jobs:
        reconstruct(job, recon, config, sweep=sweep, shard=Shard())
    seconds = time.time() - start

    from neuraldiffuser.evaluation.runner import run_evaluation

    config.evaluate.metrics = METRICS
    doc = run_evaluation([recon], args.dataset, config, args.out / "eval")
    rows = []
    for r in doc["rows"]:
        if r["policy"] not in ("mean", "repeat0"):
            continue
        vals = {m: r["values"].get(m) for m in METRICS}
        rows.append(
            {
                "setting": r["setting"],
                "targets": "oracle" if r["setting"].endswith("_oracle") else "decoded",
                "policy": r["policy"],
                **{m: v if isinstance(v, (int, float)) else None for m, v in vals.items()},
            }
        )
    print(f"{'targets':<8} {'setting':<28} {'policy':<8} " + " ".join(f"{m:>12}" for m in METRICS))
    for r in sorted(rows, key=lambda r: (r["targets"], r["policy"], r["setting"])):
        print(
            f"{r['targets']:<8} {r['setting']:<28} {r['policy']:<8} "
            + " ".join(f"{r[m]:12.4f}" if r[m] is not None else f"{'—':>12}" for m in METRICS)
        )
    atomic_write_json(
        args.results,
        {
            "benchmark": "guidance_insilico",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "dataset": args.dataset,
            "targets": args.targets,
            "decoded": args.decoded,
            "images": len(jobs[0].images),
            "reconstruct_seconds": seconds,
            "sampler": config.sampler.model_dump(),
            "zoo": config.zoo.path,
            "rows": rows,
        },
    )
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
