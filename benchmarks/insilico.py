"""The in-silico benchmark: every method on subject 1's shared test images of the mini in-silico NSD.

Rows: ridge (unguided sampler on ridge-decoded targets), MindDiffuser, the NeuroPictor-style model,
NeuralDiffuser unguided (κ = 0) and guided over a κ × η grid, and NeuralDiffuser on the true
targets (oracle: the upper bound of any decoder with this zoo and sampler). Everything runs through
the command line in WORK and every step is skipped when its output exists, so a rerun resumes:

    python benchmarks/insilico.py --work /tmp/nd-insilico [--demo runs/demo] [--limit 100] [--workers 2]

``--demo DIR`` reuses a demo folder's dataset, targets and trained decoders (same preset). Writes the
table to benchmarks/results/insilico.json (metrics, seconds per image, training time, total wall
time), the per-image values of every row on repeat 0 to benchmarks/results/insilico_per_image.json (what
benchmarks/paired_intervals.py recomputes the docs' intervals from), WORK/metrics/metrics.json and
WORK/report.html, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = [sys.executable, "-m", "neuraldiffuser.cli.main"]
SHOWN = ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way", "EffNet-Lite0 dist", "Brain corr. all"]


class Steps:
    """Runs CLI commands with a log, skipping finished ones and accumulating wall time per key."""

    def __init__(self, work: Path, threads: int):
        self.work, self.threads, self.log = work, threads, work / "commands.log"
        self.times_path = work / "times.json"
        self.times = json.loads(self.times_path.read_text()) if self.times_path.is_file() else {}

    def __call__(self, key: str, args: list[str], done: Path | bool = False) -> None:
        if done is True or (isinstance(done, Path) and done.exists()):
            return
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "NEURALDIFFUSER_PROGRESS": "0",
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
        }
        print(f"[{time.strftime('%H:%M:%S')}] {key}: neuraldiffuser {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        with open(self.log, "a") as f:
            f.write(f"\n$ neuraldiffuser {' '.join(args)}\n")
            f.flush()
            code = subprocess.call([*EXE, *args], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if code:
            tail = "".join(self.log.read_text().splitlines(True)[-30:])
            raise SystemExit(f"command failed ({code}): neuraldiffuser {' '.join(args)}\n{tail}")
        self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - t0
        self.times_path.write_text(json.dumps(self.times, indent=1))


def complete(folder: Path) -> bool:
    m = folder / "manifest.json"
    return m.is_file() and json.loads(m.read_text()).get("complete", False)


def run(a: argparse.Namespace) -> tuple[list[Path], Steps]:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    step = Steps(work, a.threads)
    common = ["--preset", "mini", *[x for s in a.set for x in ("--set", s)]]
    src = Path(a.demo) if a.demo else work
    data, targets, nd = src / "data", src / "targets.hdf5", src / "decoders"
    step("simulate", ["simulate", "--preset", "mini", "-o", str(data)], done=data / "dataset.json")
    step("extract", ["extract", str(data), "-o", str(targets), *common], done=targets)
    step(
        "neuraldiffuser_train",
        ["train", str(data), str(targets), "-o", str(nd), *common],
        done=nd / "summary.json",
    )
    step("neuraldiffuser_decode", ["decode", str(nd), "--ridge"], done=nd / "decoded_ridge.hdf5")

    recon, lim = work / "recon", (["--limit", str(a.limit)] if a.limit else [])
    rec = [
        "-o",
        str(recon),
        "--dataset",
        str(data),
        "--repeats",
        str(a.repeats),
        "--workers",
        str(a.workers),
        *lim,
        *common,
    ]
    grid = [x for k in a.kappa for x in ("--kappa", str(k))] + [x for e in a.eta for x in ("--eta", str(e))]
    step("neuraldiffuser_reconstruct", ["reconstruct", str(nd / "decoded.hdf5"), *grid, "--kappa", "0", *rec])
    step(
        "oracle_reconstruct",
        [
            "reconstruct",
            str(nd / "decoded.hdf5"),
            "--oracle",
            str(targets),
            "--kappa",
            str(a.oracle_kappa),
            "--kappa",
            "0",
            "--eta",
            str(a.oracle_eta),
            *rec,
        ],
    )
    step("ridge_reconstruct", ["reconstruct", str(nd / "decoded_ridge.hdf5"), "--method", "ridge", *rec])
    for method in ("minddiffuser", "neuropictor"):
        run_dir = work / method
        step(
            f"{method}_train",
            ["train", str(data), str(targets), "--method", method, "-o", str(run_dir), *common],
            done=run_dir / "summary.json",
        )
        step(f"{method}_decode", ["decode", str(run_dir)], done=run_dir / "decoded.hdf5")
        step(
            f"{method}_reconstruct",
            [
                "reconstruct",
                str(run_dir),
                "--method",
                method,
                *rec[:2],
                "--dataset",
                str(data),
                "--repeats",
                "1",
                "--workers",
                str(a.workers),
                *lim,
            ],
        )
    folders = sorted(m.parent for m in recon.glob("*/*/manifest.json"))
    missing = [f for f in folders if not complete(f)]
    if missing:
        raise SystemExit(f"unfinished reconstructions: {missing}; rerun to resume")
    step(
        "evaluate",
        ["evaluate", *map(str, folders), "--truth", str(data), "-o", str(work / "metrics"), *common],
    )
    step(
        "report",
        [
            "report",
            str(work / "metrics" / "metrics.json"),
            "-o",
            str(work / "report.html"),
            "--title",
            "in-silico benchmark, subject 1",
        ],
    )
    return folders, step


def table(work: Path, folders: list[Path], step: Steps, a: argparse.Namespace, wall: float) -> dict:
    doc = json.loads((work / "metrics" / "metrics.json").read_text())
    train_key = {"minddiffuser": "minddiffuser_train", "neuropictor": "neuropictor_train"}
    rows = []
    for folder in folders:
        m = json.loads((folder / "manifest.json").read_text())
        row = next(
            r
            for r in doc["rows"]
            if r["method"] == m["method"] and r["setting"] == m["setting"] and r["policy"] == "repeat0"
        )
        rows.append(
            {
                "method": m["method"],
                "setting": m["setting"],
                "targets": m["params"].get("targets", "decoded"),
                "images": len(m["images"]),
                "repeats": m["repeats"],
                "seconds_per_image": m["seconds_per_image"],
                "train_seconds": step.times.get(train_key.get(m["method"], "neuraldiffuser_train")),
                "metrics": {k: v for k, v in row["values"].items() if not isinstance(v, dict)},
                "unavailable": sorted(k for k, v in row["values"].items() if isinstance(v, dict)),
            }
        )
    return {
        "benchmark": "in-silico mini NSD, subject 1, shared test images; metrics on repeat 0",
        "work": str(work),
        "demo": a.demo,
        "overrides": a.set,
        "kappa": a.kappa,
        "eta": a.eta,
        "repeats": a.repeats,
        "workers": a.workers,
        "threads": a.threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "step_seconds": {k: round(v, 1) for k, v in step.times.items()},
        "wall_seconds_this_run": round(wall, 1),
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(
        f"{'method':15s} {'setting':26s} " + " ".join(f"{n[:18]:>18s}" for n in SHOWN) + f" {'s/image':>8s}"
    )
    for r in result["rows"]:
        vals = [
            f"{r['metrics'][n]:18.3f}" if isinstance(r["metrics"].get(n), float) else f"{'-':>18s}"
            for n in SHOWN
        ]
        print(
            f"{r['method']:15s} {r['setting']:26s} " + " ".join(vals) + f" {r['seconds_per_image'] or 0:8.2f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="Working folder (resumable).")
    p.add_argument("--demo", default=None, help="Reuse this demo folder's data/, targets.hdf5 and decoders/.")
    p.add_argument(
        "--kappa",
        type=float,
        action="append",
        default=None,
        help="κ grid (repeatable; default 100, 300, 1000, 3e5).",
    )
    p.add_argument(
        "--eta", type=float, action="append", default=None, help="η grid (repeatable; default 0.2, 0.4)."
    )
    p.add_argument("--oracle-kappa", type=float, default=300.0)
    p.add_argument("--oracle-eta", type=float, default=0.4)
    p.add_argument("--repeats", type=int, default=1, help="Reconstructions per image (metrics use repeat 0).")
    p.add_argument("--limit", type=int, default=None, help="Only the first N test images.")
    p.add_argument("--workers", type=int, default=2, help="Reconstruction processes (one thread each).")
    p.add_argument("--threads", type=int, default=2, help="Threads of the other commands.")
    p.add_argument("--set", action="append", default=[], help="Config override passed to every command.")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "insilico.json"))
    p.add_argument("--per-image", default=str(ROOT / "benchmarks" / "results" / "insilico_per_image.json"))
    a = p.parse_args()
    a.kappa, a.eta = a.kappa or [100.0, 300.0, 1000.0, 3e5], a.eta or [0.2, 0.4]
    t0 = time.perf_counter()
    folders, step = run(a)
    result = table(Path(a.work), folders, step, a, time.perf_counter() - t0)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    sys.path.insert(0, str(Path(__file__).parent))
    from per_image import rows_of, write_per_image

    keep = rows_of(
        Path(a.work) / "metrics" / "metrics.json",
        lambda r: r["policy"] == "repeat0" and r["method"] != "stimulus",
    )
    write_per_image(
        a.per_image, keep, benchmark="insilico.py", means=str(Path(a.out).name), repeats=a.repeats
    )
    print_table(result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
