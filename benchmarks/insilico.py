"""The in-silico benchmark: every method on subject 1's shared test images of the mini in-silico NSD.

Rows: ridge (the preset's sampler on ridge-decoded targets), MindDiffuser, the NeuroPictor-style model,
NeuralDiffuser unguided (κ = 0) and guided over a κ × η grid, and NeuralDiffuser on the true
targets (oracle: the upper bound of any decoder with this zoo and sampler). Every stage runs in this
process through the functions its command calls (WORK/commands.log names the equivalent command), and
every step is skipped when its output exists, so a rerun resumes:

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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way", "EffNet-Lite0 dist", "Brain corr. all"]


class Steps:
    """Runs the stages in this process with a log, skipping finished ones and accumulating wall time per key
    in WORK/times.json (read and written around each step, so a stage run by another process on the same WORK
    keeps its time)."""

    def __init__(self, work: Path):
        self.work, self.log = work, work / "commands.log"
        self.times_path = work / "times.json"

    @property
    def times(self) -> dict[str, float]:
        return json.loads(self.times_path.read_text()) if self.times_path.is_file() else {}

    def __call__(self, key: str, command: str, fn, done: Path | bool = False) -> None:
        """Run ``fn()``, the in-process equivalent of ``neuraldiffuser COMMAND`` (logged), unless ``done``."""
        if done is True or (isinstance(done, Path) and done.exists()):
            return
        print(f"[{time.strftime('%H:%M:%S')}] {key}: as `neuraldiffuser {command}`", flush=True)
        with open(self.log, "a") as f:
            f.write(f"\n[{time.strftime('%H:%M:%S')}] {key}: as `neuraldiffuser {command}`\n")
        t0 = time.perf_counter()
        fn()
        times = self.times
        times[key] = times.get(key, 0.0) + time.perf_counter() - t0
        self.times_path.write_text(json.dumps(times, indent=1))


def complete(folder: Path) -> bool:
    m = folder / "manifest.json"
    return m.is_file() and json.loads(m.read_text()).get("complete", False)


def mini(overrides: list[str], files: list[Path] = (), preset: str | None = "mini"):
    """The config a stage command resolves from ``--preset mini`` (or ``files``) and ``--set`` overrides."""
    from neuraldiffuser.config import load_config, parse_overrides
    from neuraldiffuser.config.paths import absolute_paths

    return absolute_paths(load_config(preset=preset, files=files, overrides=parse_overrides(overrides)))


def simulate(data: Path) -> None:
    from neuraldiffuser.config import save_config
    from neuraldiffuser.simulate.run import simulate_dataset

    cfg = mini(["simulate.preset=mini"])
    simulate_dataset(data, cfg.simulate)
    save_config(cfg, data / "simulator")


def extract(data: Path, targets: Path, sets: list[str]) -> None:
    from neuraldiffuser.config import save_config
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.targets.extract import extract_targets

    cfg = mini(sets)
    cfg.data.path = str(data)
    save_config(cfg, targets.parent, name=f"{targets.stem}.config.yaml")
    extract_targets(cfg, open_dataset(data, cfg.data.layout, cfg.data.captions), targets)


def train(data: Path, targets: Path, out: Path, sets: list[str], method: str) -> None:
    """`train` (NeuralDiffuser's decoders, sized to the data as the command does) or `train --method`."""
    from neuraldiffuser.config import save_config
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.methods.cli import train_method
    from neuraldiffuser.training.autoscale import adapt_to_data
    from neuraldiffuser.training.runner import check_run_dir, train_decoders

    cfg = mini(sets)
    if method != "neuraldiffuser":
        train_method(method, cfg, data, targets, out, resume=False)
        return
    cfg.data.path = str(data)
    cfg = adapt_to_data(cfg, open_dataset(data, cfg.data.layout, cfg.data.captions))
    check_run_dir(out, resume=False)
    save_config(cfg, out)
    train_decoders(cfg, out, targets)


def decode(run_dir: Path, method: str) -> None:
    """`decode RUN_DIR` on the run's own config (with the ridge baseline for NeuralDiffuser's decoders)."""
    from neuraldiffuser.config import save_config
    from neuraldiffuser.methods.cli import decode_method
    from neuraldiffuser.training.decode import decode_test

    cfg = mini([], files=[run_dir / "config.yaml"], preset=None)
    if method == "neuraldiffuser":
        decode_test(cfg, run_dir, run_dir / "decoded.hdf5")
        decode_test(cfg, run_dir, run_dir / "decoded_ridge.hdf5", method="ridge")
    else:
        decode_method(method, cfg, run_dir, run_dir / "decoded.hdf5")
    save_config(cfg, run_dir, name="decoded.config.yaml")


def run(a: argparse.Namespace) -> tuple[list[Path], Steps]:
    from neuraldiffuser.evaluation.runner import run_evaluation
    from neuraldiffuser.report.html import write_report
    from neuraldiffuser.sampling.processes import reconstruct_in_processes

    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    step = Steps(work)
    src = Path(a.demo).resolve() if a.demo else work
    data, targets, nd = src / "data", src / "targets.hdf5", src / "decoders"
    sets = " ".join(f"--set {s}" for s in a.set)
    step("simulate", f"simulate --preset mini -o {data}", lambda: simulate(data), done=data / "dataset.json")
    step(
        "extract",
        f"extract {data} -o {targets} --preset mini {sets}",
        lambda: extract(data, targets, a.set),
        done=targets,
    )
    step(
        "neuraldiffuser_train",
        f"train {data} {targets} -o {nd} --preset mini {sets}",
        lambda: train(data, targets, nd, a.set, "neuraldiffuser"),
        done=nd / "summary.json",
    )
    step(
        "neuraldiffuser_decode",
        f"decode {nd} --ridge",
        lambda: decode(nd, "neuraldiffuser"),
        done=nd / "decoded_ridge.hdf5",
    )

    recon = work / "recon"
    cfg = mini([*a.set, f"sampler.repeats={a.repeats}"])
    opts = f"-o {recon} --dataset {data} --workers {a.workers}" + (f" --limit {a.limit}" if a.limit else "")

    def rec(source: Path | None, config, **kw) -> None:
        reconstruct_in_processes(source, recon, config, a.workers, dataset=data, limit=a.limit, **kw)

    grid = {"kappa": [*a.kappa, 0.0], "eta": a.eta}
    step(
        "neuraldiffuser_reconstruct",
        f"reconstruct {nd / 'decoded.hdf5'} {' '.join(f'--kappa {k:g}' for k in grid['kappa'])} "
        f"{' '.join(f'--eta {e:g}' for e in a.eta)} --repeats {a.repeats} {opts} --preset mini {sets}",
        lambda: rec(nd / "decoded.hdf5", cfg, sweep=grid),
    )
    oracle = {"kappa": [a.oracle_kappa, 0.0], "eta": [a.oracle_eta]}
    step(
        "oracle_reconstruct",
        f"reconstruct {nd / 'decoded.hdf5'} --oracle {targets} --kappa {a.oracle_kappa:g} --kappa 0 "
        f"--eta {a.oracle_eta:g} --repeats {a.repeats} {opts} --preset mini {sets}",
        lambda: rec(nd / "decoded.hdf5", cfg, oracle=targets, sweep=oracle),
    )
    step(
        "ridge_reconstruct",
        f"reconstruct {nd / 'decoded_ridge.hdf5'} --method ridge "
        f"--repeats {a.repeats} {opts} --preset mini {sets}",
        lambda: rec(nd / "decoded_ridge.hdf5", cfg, method="ridge"),
    )
    for method in ("minddiffuser", "neuropictor"):
        run_dir = work / method
        step(
            f"{method}_train",
            f"train {data} {targets} --method {method} -o {run_dir} --preset mini {sets}",
            lambda m=method, r=run_dir: train(data, targets, r, a.set, m),
            done=run_dir / "summary.json",
        )
        step(
            f"{method}_decode",
            f"decode {run_dir}",
            lambda m=method, r=run_dir: decode(r, m),
            done=run_dir / "decoded.hdf5",
        )
        own = mini(["sampler.repeats=1"], files=[run_dir / "config.yaml"], preset=None)  # the run's config
        step(
            f"{method}_reconstruct",
            f"reconstruct {run_dir} --method {method} --repeats 1 {opts}",
            lambda m=method, r=run_dir, c=own: rec(r, c, method=m),
        )
    folders = sorted(m.parent for m in recon.glob("*/*/manifest.json"))
    missing = [f for f in folders if not complete(f)]
    if missing:
        raise SystemExit(f"unfinished reconstructions: {missing}; rerun to resume")
    step(
        "evaluate",
        f"evaluate {' '.join(map(str, folders))} --truth {data} -o {work / 'metrics'} --preset mini {sets}",
        lambda: run_evaluation(folders, data, mini(a.set), work / "metrics"),
    )
    title = "in-silico benchmark, subject 1"
    step(
        "report",
        f"report {work / 'metrics' / 'metrics.json'} -o {work / 'report.html'} --title '{title}'",
        lambda: write_report(
            [work / "metrics" / "metrics.json"], work / "report.html", title=title, images=6
        ),
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
    p.add_argument("--threads", type=int, default=2, help="Threads of the other stages.")
    p.add_argument("--set", action="append", default=[], help="Config override (key=value) for every stage.")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "insilico.json"))
    p.add_argument("--per-image", default=str(ROOT / "benchmarks" / "results" / "insilico_per_image.json"))
    a = p.parse_args()
    a.kappa, a.eta = a.kappa or [100.0, 300.0, 1000.0, 3e5], a.eta or [0.2, 0.4]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    import torch

    torch.set_num_threads(a.threads)  # the reconstruction workers use one thread each
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
