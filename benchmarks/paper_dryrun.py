"""A dry run of every stage of the `paper` preset at the paper's architectures, on the CPU.

Builds the stand-ins of ``paper_standins.py`` (SD v1.4 UNet/VAE/text encoder, CLIP ViT-B/32 and ViT-L/14 with
random weights, in a Hugging Face cache read offline; NSD in MindEye2's layout with the real voxel counts),
then runs, as a user would, ``neuraldiffuser <stage> ... --preset paper`` for: inspect, extract, train
(pretrain → fine-tune, + ridge), decode, reconstruct guided (κ 3e5) and unguided (κ 0), the two comparison
methods (MindDiffuser: fit, decode, reconstruct; NeuroPictor-style: pretrain → fine-tune → CFG, decode,
reconstruct), evaluate and report. The CLI is called in-process (``cli.main.main``): the preset-through-CLI
path is what a user runs, and one process lets the stand-in cache and the per-stage memory be measured.

Only counts are reduced (epochs, steps, images, subjects), and the resolution: the UNet's sample size is 8
(64 px) by default instead of 64 (512 px). Every reduction is written to the JSON under ``reductions``.
Per stage: ok/failed (with the error), wall seconds, peak RSS (the process's high-water mark, reset before
each stage through /proc/self/clear_refs) and the shapes of what it wrote.

    python benchmarks/paper_dryrun.py                       # 64 px, 2 subjects
    python benchmarks/paper_dryrun.py --side 128 --work /tmp/dry

Writes benchmarks/results/paper_dryrun.json and prints a table. Exits 1 if a stage failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import paper_standins as ps  # noqa: E402


def reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM) of this process; False where not supported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shapes_of(path: Path) -> dict:
    """What a stage wrote: datasets of hdf5 files, PNG counts and sizes, file sizes, a folder's listing."""
    import h5py

    path = Path(path)
    if not path.exists():
        return {"missing": str(path)}
    if path.suffix == ".hdf5":
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda k, v: out.__setitem__(k, list(v.shape)) if isinstance(v, h5py.Dataset) else None
            )
        return out
    if path.is_file():
        return {"bytes": path.stat().st_size}
    pngs = sorted(path.rglob("*.png"))
    out: dict = {
        "files": sum(1 for p in path.rglob("*") if p.is_file()),
        "bytes": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
    }
    if pngs:
        from PIL import Image

        out["png"] = len(pngs)
        out["png_shape"] = list(Image.open(pngs[0]).size)
    weights = sorted(path.rglob("*.safetensors"))
    if weights:
        out["safetensors"] = {str(p.relative_to(path)): p.stat().st_size for p in weights[:20]}
    return out


class CheckpointSweeper:
    """Deletes the checkpoints of finished training stages while the dry run goes on, recording their sizes.

    At the paper's sizes one checkpoint of the c model is ~6 GB (weights + AdamW state) and a run has 16 model
    stages: kept, they would fill this machine's disk. A stage is finished when its
    ``model/config.json`` exists.
    """

    def __init__(self, root: Path, every: float = 2.0):
        import threading

        self.root, self.every, self.sizes = root, every, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sweep()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sweep()

    def sweep(self) -> None:
        import shutil

        for ckpts in self.root.rglob("checkpoints"):
            if not (ckpts.parent / "model" / "config.json").is_file() or not ckpts.is_dir():
                continue
            for step in sorted(ckpts.glob("step-*")):
                key = str(step.relative_to(self.root))
                if key not in self.sizes:
                    self.sizes[key] = sum(p.stat().st_size for p in step.rglob("*") if p.is_file())
                shutil.rmtree(step, ignore_errors=True)


def run_stage(name: str, argv: list[str], outputs: list[Path]) -> dict:
    from neuraldiffuser.cli.main import main

    resumed = (
        argv[0] == "train" and (out := Path(argv[argv.index("--out") + 1])).is_dir() and any(out.iterdir())
    )
    if resumed:  # a dry run interrupted earlier (e.g. by the OOM killer) continues its training runs
        argv = [*argv, "--resume"]
    print(f"\n=== {name}: neuraldiffuser {' '.join(argv)}", flush=True)
    reset_peak()
    t = time.perf_counter()
    try:
        rc = main(argv)
        error = None if rc == 0 else f"exit code {rc}"
    except Exception as exc:  # the dry run's job is to report every failure, not stop at the first
        traceback.print_exc()
        rc, error = 1, f"{exc.__class__.__name__}: {exc}"
    wall = time.perf_counter() - t
    row = {
        "stage": name,
        "ok": rc == 0,
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak_mib()),
        "argv": argv,
        "resumed": bool(resumed),
    }
    if error:
        row["error"] = error[:2000]
    row["outputs"] = {str(p.name): shapes_of(p) for p in outputs}
    print(
        f"=== {name}: {'ok' if rc == 0 else 'FAILED ' + str(error)} "
        f"in {wall:.0f} s, peak RSS {row['peak_rss_mib']} MiB",
        flush=True,
    )
    return row


def reductions(side: int, n_images: int) -> dict[str, list[str]]:
    """The --set overrides of each stage: counts only (and the resolution, set by the stand-in UNet)."""
    return {
        "train": [
            "train.pretrain_epochs=1",
            "train.finetune_epochs=1",
            "train.batch_size=12",
            "train.epoch_samples=12",
            "train.tensorboard=false",
        ],
        "sampler": ["sampler.steps=10", "sampler.repeats=2"],
        "minddiffuser": [
            "minddiffuser.steps=10",
            "minddiffuser.noise_index=7",
            "minddiffuser.denoise_steps=7",
            "minddiffuser.iterations=1",
        ],
        "neuropictor": [
            "neuropictor.pretrain_epochs=1",
            "neuropictor.finetune_epochs=1",
            "neuropictor.cfg_epochs=1",
            "neuropictor.epoch_samples=2",
            "neuropictor.pretrain_batch_size=2",
            "neuropictor.batch_size=2",
            "neuropictor.steps=10",
        ],
    }


def sets(*groups: list[str]) -> list[str]:
    return [a for g in groups for s in g for a in ("--set", s)]


def plan(nsd: Path, work: Path, red: dict, limit: int) -> list[tuple[str, list[str], list[Path]]]:
    t, runs, rec = work / "targets.hdf5", work / "runs", work / "recon"
    nd, md, npx = runs / "nd", runs / "minddiffuser", runs / "neuropictor"
    lim = ["--limit", str(limit)]
    P = ["--preset", "paper"]
    return [
        ("inspect", ["inspect", str(nsd)], []),
        ("extract", ["extract", str(nsd), *P, "--out", str(t), "--overwrite"], [t]),
        ("train", ["train", str(nsd), str(t), *P, "--out", str(nd), *sets(red["train"])], [nd / "decoders"]),
        ("decode", ["decode", str(nd), "--ridge"], [nd / "decoded.hdf5", nd / "decoded_ridge.hdf5"]),
        (
            "reconstruct_guided",
            ["reconstruct", str(nd), "--out", str(rec), "--kappa", "3e5", *lim, *sets(red["sampler"])],
            [rec / "neuraldiffuser"],
        ),
        (
            "reconstruct_unguided",
            ["reconstruct", str(nd), "--out", str(rec), "--kappa", "0", *lim, *sets(red["sampler"])],
            [rec / "neuraldiffuser"],
        ),
        (
            "reconstruct_ridge",
            [
                "reconstruct",
                str(nd / "decoded_ridge.hdf5"),
                "--out",
                str(rec),
                "--method",
                "ridge",
                "--dataset",
                str(nsd),
                *lim,
                *P,
                *sets(red["sampler"]),
            ],
            [rec / "ridge"],
        ),
        (
            "minddiffuser_train",
            [
                "train",
                str(nsd),
                str(t),
                *P,
                "--method",
                "minddiffuser",
                "--out",
                str(md),
                *sets(red["minddiffuser"]),
            ],
            [md],
        ),
        ("minddiffuser_decode", ["decode", str(md)], [md / "decoded.hdf5"]),
        (
            "minddiffuser_reconstruct",
            [
                "reconstruct",
                str(md),
                "--out",
                str(rec),
                "--method",
                "minddiffuser",
                *lim,
                *sets(red["sampler"], red["minddiffuser"]),
            ],
            [rec / "minddiffuser"],
        ),
        (
            "neuropictor_train",
            [
                "train",
                str(nsd),
                str(t),
                *P,
                "--method",
                "neuropictor",
                "--out",
                str(npx),
                *sets(red["neuropictor"]),
            ],
            [npx],
        ),
        ("neuropictor_decode", ["decode", str(npx)], [npx / "decoded.hdf5"]),
        (
            "neuropictor_reconstruct",
            [
                "reconstruct",
                str(npx),
                "--out",
                str(rec),
                "--method",
                "neuropictor",
                *lim,
                *sets(red["sampler"], red["neuropictor"]),
            ],
            [rec / "neuropictor"],
        ),
        (
            "evaluate",
            [
                "evaluate",
                str(rec),
                "--truth",
                str(nsd),
                *P,
                "--decoded",
                str(nd / "decoded.hdf5"),
                "--targets",
                str(t),
                "--set",
                "evaluate.retrieval_subset=2",
                "--set",
                "evaluate.retrieval_draws=2",
            ],
            [rec / "metrics.json"],
        ),
        ("report", ["report", str(rec), "--out", str(work / "report.html")], [work / "report.html"]),
    ]


def print_table(rows: list[dict]) -> None:
    print(f"\n{'stage':28} {'ok':>6} {'wall s':>8} {'peak RSS MiB':>13}")
    for r in rows:
        print(
            f"{r['stage']:28} {'ok' if r['ok'] else 'FAILED':>6} {r['wall_s']:8.1f} {r['peak_rss_mib']:13d}"
        )


def brief_outputs(outputs: dict) -> str:
    """One line per output: hdf5 dataset shapes, PNG counts and sizes, bytes."""
    parts = []
    for name, o in outputs.items():
        if "png" in o:
            parts.append(f"{name}: {o['png']} PNG {o['png_shape'][0]}×{o['png_shape'][1]}")
        elif "files" in o or "bytes" in o and len(o) == 1:
            parts.append(f"{name}: {o.get('files', 1)} files, {o['bytes'] / 2**20:.0f} MiB")
        elif "missing" in o:
            parts.append(f"{name}: missing")
        elif name == "params":
            parts.append(", ".join(f"{k} {v / 1e6:.1f} M" for k, v in o.items() if k != "unet_sample_size"))
        else:
            parts.append(
                f"{name}: " + ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in o.items() if k != "done")
            )
    return "; ".join(parts)


def markdown(rows: list[dict]) -> str:
    lines = ["| stage | result | wall (s) | peak RSS (MiB) | outputs |", "|---|---|---|---|---|"]
    for r in rows:
        result = "ok" if r["ok"] else f"**{r.get('status', 'failed')}**: {r.get('error', '')[:160]}"
        lines.append(
            f"| {r['stage']} | {result} | {r['wall_s']:.0f} | "
            f"{r['peak_rss_mib']:,} | {brief_outputs(r.get('outputs', {}))} |"
        )
    return "\n".join(lines)


def write(out: Path, meta: dict, rows: list[dict], checkpoint_bytes: dict, merge: bool) -> dict:
    """Write the JSON; a partial rerun (``--only``) updates its stages in the existing table."""
    from neuraldiffuser.utils.io import atomic_write_json

    stages, sizes = list(rows), dict(checkpoint_bytes)
    if merge and out.is_file():
        old = json.loads(out.read_text())
        by = {r["stage"]: r for r in old.get("stages", [])}
        by.update({r["stage"]: r for r in rows})
        stages = list(by.values())
        sizes = {**old.get("checkpoint_bytes", {}), **sizes}
        meta = {**{k: v for k, v in old.items() if k not in ("stages", "checkpoint_bytes")}, **meta}
    doc = {**meta, "stages": stages, "checkpoint_bytes": sizes, "all_ok": all(r["ok"] for r in stages)}
    atomic_write_json(out, doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--side", type=int, default=64, help="pixel resolution of the stand-in stack (512 is the paper's)"
    )
    ap.add_argument(
        "--subjects", nargs="+", default=["subj01", "subj02"], help="subj01 is the target, the rest pretrain"
    )
    ap.add_argument("--limit", type=int, default=2, help="test images reconstructed per method")
    ap.add_argument(
        "--work",
        default="/tmp/neuraldiffuser-paper-dryrun",
        help="work folder (the stand-ins are kept there for reruns)",
    )
    ap.add_argument("--only", nargs="*", help="run only these stages (their inputs must exist)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--out", default=str(ROOT / "results" / "paper_dryrun.json"))
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="print the table of an existing --out JSON as Markdown, run nothing",
    )
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())["stages"]))
        return 0
    work = Path(args.work)
    ps.use_cache(work / "hf")
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    reset_peak()
    t = time.perf_counter()
    counts = ps.build_models(work / "hf", args.side // 8)
    nsd = ps.build_nsd(work / "nsd", args.subjects)
    rows.append(
        {
            "stage": "build_standins",
            "ok": True,
            "wall_s": round(time.perf_counter() - t, 1),
            "peak_rss_mib": round(peak_mib()),
            "outputs": {"params": counts},
        }
    )
    red = reductions(args.side, 0)
    meta = {
        "what": "every stage of the paper preset on random-weight stand-ins of the exact architectures (CPU)",
        "device": "cpu",
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "resolution": {
            "px": args.side,
            "unet_sample_size": args.side // 8,
            "paper_px": 512,
            "why": "CPU time: a 512 px guided step of the 860 M UNet takes minutes on 2 shared cores",
        },
        "reductions": {
            "subjects": args.subjects,
            "test_images_reconstructed": args.limit,
            "dataset": "6 own training images per subject seen twice, 4 shared test images seen 3 times",
            "overrides": red,
        },
    }
    (work / "run").mkdir(parents=True, exist_ok=True)
    with CheckpointSweeper(work / "run") as sweeper:
        for name, cmd, outs in plan(nsd, work / "run", red, args.limit):
            if args.only and name not in args.only:
                continue
            rows.append(run_stage(name, cmd, outs))
            doc = write(
                Path(args.out), meta, rows, sweeper.sizes, merge=bool(args.only)
            )  # after every stage: a killed run keeps its rows
    doc = write(Path(args.out), meta, rows, sweeper.sizes, merge=bool(args.only))
    print_table(rows)
    print(f"wrote {args.out}")
    return 0 if doc["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
