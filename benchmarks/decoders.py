"""Decoder benchmark on the in-silico `mini` preset: quality of decoded c, z and g, and training time.

    neuraldiffuser simulate --preset mini --out WORK/ds
    neuraldiffuser extract WORK/ds --preset mini --out WORK/targets.hdf5
    python benchmarks/decoders.py --dataset WORK/ds --targets WORK/targets.hdf5 --work WORK/bench

Variants (all on the target subject subj01, test = the shared test images, voxel-averaged repeats):
  per_target   one model per target (c, g0…g5, z): pretrain on the other subjects, fine-tune on all sessions
  multi_head   one shared model with every head, same schedule
  ridge        closed-form ridge on all of subj01's training sessions
  few_*        1/8 of subj01's sessions: pretrained + fine-tuned, trained from scratch (same fine-tune
               schedule), and ridge
Metrics per target: ``r_image`` (Pearson r between decoded and true features of each test image, mean),
``r_feature`` (Pearson r across test images of each feature dimension, mean: insensitive to the mean
pattern every image shares), ``two_way`` (MindEye2's two-way identification on the features, chance 0.5).
Writes a table to stdout and JSON to benchmarks/results/decoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np


def metrics(decoded_path: Path, targets_path: Path) -> dict:
    from neuraldiffuser.evaluation.metrics import pearson_rows, two_way_identification
    from neuraldiffuser.targets.store import TargetStore

    dec, truth = TargetStore(decoded_path), TargetStore(targets_path)
    out = {}
    for key in dec.keys:
        pred = dec.get(key, np.arange(len(dec)))
        true = truth.get_images(key, dec.image)
        parts = (
            {key: (pred, true)}
            if key != "g"
            else {f"g{i}": (pred[:, i], true[:, i]) for i in range(pred.shape[1])}
        )
        for name, (p, t) in parts.items():
            p, t = p.reshape(len(p), -1).astype(np.float64), t.reshape(len(t), -1).astype(np.float64)
            pc, tc = p - p.mean(0), t - t.mean(0)
            denom = np.sqrt((pc**2).sum(0) * (tc**2).sum(0))
            ok = denom > 1e-12
            out[name] = {
                "r_image": float(np.mean(pearson_rows(t, p))),
                "r_feature": float(np.mean((pc * tc).sum(0)[ok] / denom[ok])),
                "two_way": float(np.mean(two_way_identification(t, p))),
            }
    return out


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train(cfg, run_dir: Path, targets: Path, reuse_pretrain: Path | None = None) -> dict:
    from neuraldiffuser.training.runner import train_decoders

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    if reuse_pretrain is not None:  # the pretraining stage does not depend on the target's sessions
        shutil.copytree(reuse_pretrain / "pretrain", run_dir / "pretrain")
        shutil.copytree(reuse_pretrain / "scalers", run_dir / "scalers")
        (run_dir / "scalers" / f"{cfg.data.subject}.safetensors").unlink()
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = train_decoders(cfg, run_dir, targets)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    stages = {}
    for r in result["runs"]:
        stages.setdefault(r["stage"], {"seconds": 0.0, "steps": 0})
        stages[r["stage"]]["seconds"] += r["seconds"]
        stages[r["stage"]]["steps"] += r["steps"]
    return {"wall_seconds": wall, "cpu_seconds": cpu, "stages": stages}


def decode(cfg, run_dir: Path, targets: Path, method: str = "neuraldiffuser") -> tuple[dict, float]:
    from neuraldiffuser.training.decode import decode_test

    t0 = time.perf_counter()
    path = decode_test(cfg, run_dir, run_dir / f"decoded_{method}.hdf5", method=method)
    return metrics(path, targets), time.perf_counter() - t0


def run_variant(
    name: str, cfg, work: Path, targets: Path, results: dict, reuse: Path | None = None, ridge: bool = False
) -> None:
    run_dir = work / name
    cfg = cfg.model_copy(deep=True)
    cfg.train.ridge = ridge
    timing = train(cfg, run_dir, targets, reuse)
    quality, dec_s = decode(cfg, run_dir, targets)
    results["variants"][name] = {
        "train": timing,
        "decode_seconds": dec_s,
        "metrics": quality,
        "layout": cfg.decoder.layout,
        "stages": cfg.train.stages,
        "sessions": cfg.data.sessions,
    }
    print(
        f"{name}: train {timing['wall_seconds']:.1f}s wall / "
        f"{timing['cpu_seconds']:.1f}s cpu, decode {dec_s:.1f}s",
        flush=True,
    )
    if ridge:
        quality, _ = decode(cfg, run_dir, targets, "ridge")
        results["variants"][f"{name}_ridge" if name.startswith("few") else "ridge"] = {
            "metrics": quality,
            "sessions": cfg.data.sessions,
        }


def table(results: dict) -> str:
    names = list(results["variants"])
    heads = list(next(iter(results["variants"].values()))["metrics"])
    lines = ["| target | metric | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for h in heads:
        for m in ("r_image", "r_feature", "two_way"):
            lines.append(
                f"| {h} | {m} | "
                + " | ".join(f"{results['variants'][n]['metrics'][h][m]:.3f}" for n in names)
                + " |"
            )
    lines.append(
        "| all | train s (wall) | "
        + " | ".join(
            f"{results['variants'][n]['train']['wall_seconds']:.1f}"
            if "train" in results["variants"][n]
            else "—"
            for n in names
        )
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--targets", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--variants", default="per_target,multi_head,few")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="config override for every variant, e.g. train.finetune_epochs=2",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a finished run whose pretraining the few-session variants reuse",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decoders.json")
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    import torch

    from neuraldiffuser.config import load_config, parse_overrides

    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_config(
        "mini",
        overrides={
            **parse_overrides(args.set),
            "data": {**parse_overrides(args.set).get("data", {}), "path": str(args.dataset)},
        },
    )
    base.train.tensorboard = False
    variants = args.variants.split(",")
    n_sessions = len(
        __import__("neuraldiffuser.data", fromlist=["open_dataset"])
        .open_dataset(args.dataset)
        .subject(base.data.subject)
        .sessions
    )
    results = {
        "dataset": str(args.dataset),
        "targets": str(args.targets),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "loadavg_start": os.getloadavg(),
        },
        "config": base.model_dump(mode="json"),
        "variants": {},
    }
    ridge_done = False
    for layout in ("per_target", "multi_head"):
        if layout in variants:
            cfg = base.model_copy(deep=True)
            cfg.decoder.layout = layout
            run_variant(layout, cfg, args.work, args.targets, results, ridge=not ridge_done)
            ridge_done = True
    # the few-session variants use the preset's layout: reuse the pretraining of the variant with that layout
    first = args.reuse or (args.work / base.decoder.layout if base.decoder.layout in variants else None)
    if "few" in variants:
        few = max(1, n_sessions // 8)
        cfg = base.model_copy(deep=True)
        cfg.data.sessions = few
        run_variant("few_pretrained", cfg, args.work, args.targets, results, reuse=first, ridge=True)
        cfg = cfg.model_copy(deep=True)
        cfg.train.stages = ["finetune"]
        run_variant("few_scratch", cfg, args.work, args.targets, results)
    results["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
