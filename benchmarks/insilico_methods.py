"""All reconstruction methods on the in-silico mini benchmark: one table of metrics and CPU time per image.

Runs, through the command line and in WORK (every step is skipped when its output exists, so a rerun
resumes): MindDiffuser (fit → decode → reconstruct), the NeuroPictor-style model (train → decode →
reconstruct), NeuralDiffuser and the ridge baseline from a NeuralDiffuser run (its decoded.hdf5 and
decoded_ridge.hdf5: given with --nd-run, or trained here with the preset), then `neuraldiffuser evaluate`
on every reconstruction folder. Writes the table to benchmarks/results/methods.json and prints it.

    python benchmarks/insilico_methods.py --dataset DS --targets DS/targets.hdf5 --work /tmp/methods \
        [--nd-run RUN] [--limit 100] [--threads 2] [--set minddiffuser.iterations=8 ...]
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


def sh(args: list[str], log: Path, threads: int) -> float:
    """Run one command (appending to ``log``); returns its wall time. Fails loudly with the log's tail."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NEURALDIFFUSER_PROGRESS": "0", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(args)}\n")
        f.flush()
        code = subprocess.call([*EXE, *args], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if code:
        raise SystemExit(f"command failed ({code}): {' '.join(args)}\n" + "".join(log.read_text().splitlines(True)[-30:]))
    return time.perf_counter() - t0


def step(done, args: list[str], log: Path, threads: int, times: dict, key: str) -> None:
    """Run unless ``done`` (a path that exists, or True); a reconstruct step resumes its unfinished images."""
    if done is True or (isinstance(done, Path) and done.exists()):
        return
    times[key] = times.get(key, 0.0) + sh(args, log, threads)


def recon_folder(root: Path, method: str) -> Path | None:
    found = sorted((root / method).glob("*/manifest.json")) if (root / method).is_dir() else []
    return found[0].parent if found else None


def finished(root: Path, method: str) -> bool:
    folder = recon_folder(root, method)
    return folder is not None and json.loads((folder / "manifest.json").read_text()).get("complete", False)


def run(a: argparse.Namespace) -> dict:
    work, log = Path(a.work), Path(a.work) / "commands.log"
    work.mkdir(parents=True, exist_ok=True)
    times_path = work / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    sets = [x for s in a.set for x in ("--set", s)]
    common = ["--preset", a.preset, "--set", f"zoo.path={a.zoo}", *sets]  # a run folder's own config.yaml is used without them
    recon = work / "recon"
    lim = ["--limit", str(a.limit)] if a.limit else []
    methods = a.methods.split(",")
    if "minddiffuser" in methods:
        run_dir = work / "minddiffuser"
        step(run_dir / "summary.json", ["train", a.dataset, a.targets, "--method", "minddiffuser", "-o", str(run_dir), *common], log, a.threads, times, "minddiffuser_train")
        step(run_dir / "decoded.hdf5", ["decode", str(run_dir)], log, a.threads, times, "minddiffuser_decode")
        step(finished(recon, "minddiffuser"), ["reconstruct", str(run_dir), "--method", "minddiffuser", "-o", str(recon), *lim, "--repeats", str(a.md_repeats), *sets], log, a.threads, times, "minddiffuser_reconstruct")
    if "neuropictor" in methods:
        run_dir = work / "neuropictor"
        step(run_dir / "summary.json", ["train", a.dataset, a.targets, "--method", "neuropictor", "-o", str(run_dir), *common], log, a.threads, times, "neuropictor_train")
        step(run_dir / "decoded.hdf5", ["decode", str(run_dir)], log, a.threads, times, "neuropictor_decode")
        step(finished(recon, "neuropictor"), ["reconstruct", str(run_dir), "--method", "neuropictor", "-o", str(recon), *lim, *sets], log, a.threads, times, "neuropictor_reconstruct")
    nd = Path(a.nd_run) if a.nd_run else work / "neuraldiffuser"
    if {"neuraldiffuser", "ridge"} & set(methods) and not a.nd_run:
        step(nd / "summary.json", ["train", a.dataset, a.targets, "-o", str(nd), *common], log, a.threads, times, "neuraldiffuser_train")
        step(nd / "decoded.hdf5", ["decode", str(nd), "--ridge"], log, a.threads, times, "neuraldiffuser_decode")
    if "neuraldiffuser" in methods:
        step(finished(recon, "neuraldiffuser"), ["reconstruct", str(nd / "decoded.hdf5"), "--dataset", a.dataset, "-o", str(recon), *lim, *common], log, a.threads, times, "neuraldiffuser_reconstruct")
    if "ridge" in methods:
        step(finished(recon, "ridge"), ["reconstruct", str(nd / "decoded_ridge.hdf5"), "--method", "ridge", "--dataset", a.dataset, "-o", str(recon), *lim, *common], log, a.threads, times, "ridge_reconstruct")
    times_path.write_text(json.dumps(times, indent=1))
    folders = [f for m in methods if (f := recon_folder(recon, m)) is not None]
    sh(["evaluate", *map(str, folders), "--truth", a.dataset, "-o", str(work / "metrics"), "--preset", a.preset, "--set", f"zoo.path={a.zoo}"], log, a.threads)
    return table(work, folders, times, a)


def table(work: Path, folders: list[Path], times: dict, a: argparse.Namespace) -> dict:
    doc = json.loads((work / "metrics" / "metrics.json").read_text())
    rows = []
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        method = manifest["method"]
        row = next(r for r in doc["rows"] if r["method"] == method and r["setting"] == manifest["setting"] and r["policy"] != "mean")
        train = {"minddiffuser": "minddiffuser_train", "neuropictor": "neuropictor_train"}.get(method, "neuraldiffuser_train")
        rows.append({"method": method, "setting": manifest["setting"], "images": len(manifest["images"]), "repeats": manifest["repeats"],
                     "seconds_per_image": manifest["seconds_per_image"], "train_seconds": times.get(train),
                     "metrics": {k: v for k, v in row["values"].items() if not isinstance(v, dict)},
                     "unavailable": sorted(k for k, v in row["values"].items() if isinstance(v, dict))})
    return {"benchmark": "in-silico mini: every method on the shared test set", "dataset": a.dataset, "targets": a.targets, "zoo": a.zoo,
            "preset": a.preset, "overrides": a.set, "threads": a.threads, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "policy": "repeat0 (one reconstruction per image)", "rows": rows}


def print_table(result: dict) -> None:
    names = [k for k in result["rows"][0]["metrics"]] if result["rows"] else []
    head = ["method", "s/image", *names]
    print(" | ".join(head))
    for r in result["rows"]:
        vals = [f"{r['metrics'][n]:.3f}" if isinstance(r["metrics"].get(n), float) else "-" for n in names]
        print(" | ".join([r["method"], f"{r['seconds_per_image']:.1f}", *vals]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--zoo", default="builtin:insilico-64")
    p.add_argument("--preset", default="mini")
    p.add_argument("--nd-run", default=None, help="A trained NeuralDiffuser run with decoded.hdf5 and decoded_ridge.hdf5.")
    p.add_argument("--methods", default="neuraldiffuser,ridge,minddiffuser,neuropictor")
    p.add_argument("--limit", type=int, default=None, help="Only the first N test images.")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--md-repeats", type=int, default=1, help="MindDiffuser refines every repeat separately; the reference makes one image.")
    p.add_argument("--set", action="append", default=[], help="Config override passed to every command.")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "methods.json"))
    a = p.parse_args()
    result = run(a)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
