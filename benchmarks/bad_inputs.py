"""Bad inputs across every command: does each end in a clean one-line error, never a traceback, an exit 0 or
an output that looks complete?

    python benchmarks/bad_inputs.py                 # every case, 2 at a time
    python benchmarks/bad_inputs.py --jobs 4 --only reconstruct --keep /tmp/bad

Builds its fixtures once in a temp folder with the CLI itself (the simulator's smallest settings, the shipped
mini zoo, decoders a few hundred parameters wide, one reconstruction of 4 steps), then runs each case as a
subprocess of the CLI with a timeout and classifies the outcome:

- clean: non-zero exit, a message, no traceback, and nothing left behind that looks complete;
- traceback: "Traceback" in the output, or death by a signal (a segfault);
- exit 0: the bad input was accepted;
- misleading: an output that looks complete (a store whose rows are all marked done, decoders, a report) is
  left behind by a failed or wrongly accepted run;
- silent: non-zero exit without a message;  timeout: no answer within --timeout seconds.

Prints the counts and writes benchmarks/results/bad_inputs.json with every case (command, exit code, the first
line of its message, class).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from bad_input_cases import CASES, Case, fixture_paths

RESULTS = Path(__file__).parent / "results" / "bad_inputs.json"
SRC = Path(__file__).resolve().parents[1] / "src"
CLASSES = ["clean", "traceback", "exit 0", "misleading", "silent", "timeout"]

TINY = """\
seed: 3
data: {subject: subj01}
decoder: {hidden: 32, blocks: 1, proj_depth: 1, prior_depth: 1, prior_heads: 2, prior_timesteps: 20,
          target_norm: standardize, z_hidden: 32, z_blocks: 1, z_map_channels: 8, z_up_channels: [8, 16],
          z_norm_groups: 4}
train: {stages: [finetune], finetune_epochs: 2, batch_size: 8, epoch_samples: null, lr: 0.001,
        tensorboard: false, ridge_alphas: [0.1, 10.0, 1000.0]}
decode: {prior_steps: 5}
sampler: {steps: 4, strength: 0.5, repeats: 1, sag_scale: 0.0}
evaluate: {metrics: [PixCorr, SSIM]}
"""


def cli(*args: str) -> None:
    """One CLI call in this process (fixtures): any failure stops the benchmark."""
    from neuraldiffuser.cli.main import main

    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"fixture step failed ({code}): neuraldiffuser {' '.join(map(str, args))}")


def build_fixtures(root: Path) -> dict[str, Path]:
    """The small dataset, store, run, decoded file, reconstruction and metrics the cases start from."""
    p = fixture_paths(root)
    t0 = time.perf_counter()
    small = [
        "--preset",
        "small",
        "--subjects",
        "1",
        "--n-images",
        "10",
        "--set",
        "simulate.test_images=4",
        "--set",
        "simulate.voxels=[40,60]",
        "--set",
        "simulate.sessions=1",
    ]
    cli("simulate", "-o", p["ds"], *small)
    cli("simulate", "-o", p["ds2"], *small, "--seed", "7")
    cli("simulate", "-o", p["me2"], *small[:2], "--subjects", "2", *small[4:], "--layout", "mindeye2")
    p["tiny_yaml"].write_text(TINY)
    cli("extract", p["ds"], "-o", p["targets"])
    cli("train", p["ds"], p["targets"], "-o", p["run"], "-c", p["tiny_yaml"])
    cli("decode", p["run"], "-o", p["decoded"])
    cli(
        "reconstruct",
        p["decoded"],
        "-o",
        p["recon"],
        "--limit",
        "1",
        "-c",
        p["tiny_yaml"],
        "--set",
        f"data.path={p['ds']}",
    )
    cli("evaluate", p["recon"], "--truth", p["ds"], "-c", p["tiny_yaml"])
    derive_fixtures(p)
    print(f"fixtures built in {time.perf_counter() - t0:.0f} s under {root}")
    return p


def derive_fixtures(p: dict[str, Path]) -> None:
    """Broken copies of the good fixtures: one defect each."""
    import h5py

    p["file"].write_text("not a folder\n")
    p["empty"].mkdir()
    p["garbage"].write_bytes(os.urandom(2048))
    p["yaml_bad"].write_text("train: [unclosed\n")
    p["yaml_list"].write_text("- a\n- b\n")
    p["metrics_garbage"].mkdir()
    (p["metrics_garbage"] / "metrics.json").write_text("{not json")
    if os.geteuid() != 0:  # root ignores permission bits: cases then use a read-only kernel folder
        p["ro"].mkdir()
        p["ro"].chmod(0o500)
    for name in ("targets_nan", "targets_undone", "targets_other"):
        shutil.copy(p["targets"], p[name])
    with h5py.File(p["targets_nan"], "r+") as f:
        z = f["z"][()]
        z[4:7] = np.nan  # training images (0-3 are test images, which training never reads)
        f["z"][...] = z
    with h5py.File(p["targets_undone"], "r+") as f:
        if "done" in f:
            d = f["done"][()]
            d[: len(d) // 2] = False
            f["done"][...] = d
    with h5py.File(p["targets_empty"], "w") as f:  # what a failed extract left behind: the layout, no rows
        with h5py.File(p["targets"], "r") as src:
            for key, value in src.attrs.items():
                f.attrs[key] = value
            for key in src:
                f.create_dataset(key, shape=(0, *src[key].shape[1:]), dtype=src[key].dtype)
    shutil.copytree(p["me2"], p["me2_nobetas"])
    for betas in sorted(
        p["me2_nobetas"].rglob("betas_all_subj02*.hdf5")
    ):  # subj01's remain: subj02 must not vanish silently
        betas.unlink()
    shutil.copytree(p["ds"], p["ds_noimages"])
    (p["ds_noimages"] / "images.hdf5").unlink()
    shutil.copytree(p["ds"], p["ds_badjson"])
    (p["ds_badjson"] / "dataset.json").write_text("{broken")
    shutil.copytree(p["run"], p["run_nodecoders"])
    shutil.rmtree(p["run_nodecoders"] / "decoders")
    shutil.copytree(p["recon"], p["evalrun_gone"])  # metrics.json kept, the reconstruction folders deleted
    for method in [d for d in p["evalrun_gone"].iterdir() if d.is_dir() and not d.name.startswith(".")]:
        shutil.rmtree(method)
    metrics = p["evalrun_gone"] / "metrics.json"  # it names the original folders by absolute path too
    metrics.write_text(metrics.read_text().replace(str(p["recon"]), str(p["evalrun_gone"])))


def limit_file_size(max_bytes: int):
    """For a child process: writes past max_bytes fail with EFBIG as on a full disk (SIGXFSZ ignored)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def run_case(case: Case, p: dict[str, Path], timeout: float) -> dict:
    p = {**p, "o": p["root"] / "o" / case.id}  # the case's own output path
    argv = [a.format(**{k: str(v) for k, v in p.items()}) for a in case.argv]
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NEURALDIFFUSER_PROGRESS": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    env.pop("HF_HUB_OFFLINE", None) if case.online else None
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            [sys.executable, "-m", "neuraldiffuser.cli.main", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=p["root"],
            preexec_fn=limit_file_size(case.fsize) if case.fsize else None,
        )
        code, out = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        code, out = (
            None,
            (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace"),
        )
    seconds = time.perf_counter() - t0
    try:
        left = case.check(p) if case.check else None
    except Exception as exc:  # noqa: BLE001 - a broken check is reported, not fatal
        left = f"check failed: {exc!r}"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    message = next(
        (ln for ln in lines if ln.lower().startswith(("error", "interrupted"))), lines[-1] if lines else ""
    )
    if code is None:
        kind = "timeout"
    elif "Traceback" in out or code < 0 or code in (134, 136, 139):
        kind = "traceback"
    elif left:
        kind = "misleading"
    elif code == 0:
        kind = "exit 0"
    else:
        kind = "clean" if message else "silent"
    print(f"{kind:<10} {case.id}  ({seconds:.0f} s)", flush=True)
    return {
        "id": case.id,
        "command": case.id.split("/")[0],
        "argv": argv,
        "exit_code": code,
        "message": message[:300],
        "class": kind,
        "left_behind": left,
        "seconds": round(seconds, 1),
        "issue": case.issue,
        "why": case.why,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once")
    ap.add_argument("--timeout", type=float, default=180, help="seconds per case")
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated id prefixes (e.g. train/,report/deleted-recon): run only those cases",
    )
    ap.add_argument(
        "--keep", type=Path, default=None, help="build (or reuse) the fixtures here and keep them"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    root = args.keep or Path(tempfile.mkdtemp(prefix="nd_bad_inputs_"))
    root.mkdir(parents=True, exist_ok=True)
    p = fixture_paths(root)
    if not (p["recon"] / "metrics.json").is_file():
        p = build_fixtures(root)
    from neuraldiffuser.utils.outputs import exclusive_output

    only = tuple(args.only.split(",")) if args.only else None
    cases = [c for c in CASES if only is None or c.id.startswith(only)]
    t0 = time.perf_counter()
    with exclusive_output(
        p["locked"], folder=True, what="reconstruction folder"
    ):  # "another run" writing there
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda c: run_case(c, p, args.timeout), cases))
    wall = time.perf_counter() - t0
    counts = Counter(r["class"] for r in rows)
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        if r["class"] != "clean":
            print(f"{r['class']:<10} {r['id']:<{width}}  exit {r['exit_code']}  {r['message'][:120]}")
    print(f"\n{len(rows)} bad inputs in {wall:.0f} s ({args.jobs} at a time)")
    print(f"{'class':<12}{'cases':>6}")
    for k in CLASSES:
        print(f"{k:<12}{counts.get(k, 0):>6}")
    by_command = Counter((r["command"], r["class"]) for r in rows)
    commands = sorted({r["command"] for r in rows})
    doc = {
        "cases": len(rows),
        "counts": {k: counts.get(k, 0) for k in CLASSES},
        "wall_s": round(wall, 1),
        "jobs": args.jobs,
        "by_command": {c: {k: by_command[(c, k)] for k in CLASSES if by_command[(c, k)]} for c in commands},
        "cpu": os.cpu_count(),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 1),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
