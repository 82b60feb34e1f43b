"""A user's own small data set, start to finish, without network (issue 17).

    python benchmarks/own_data.py [--work /tmp/own_data] [--trials 100] [--minutes 5] [--workers 2]

Stands in for a small real fMRI set: real handwritten digits (scikit-learn's ``load_digits``, 8 × 8, upsampled
to 28 × 28 greyscale with bicubic interpolation), one subject whose responses come from the simulator's
encoding model (``simulate.responses``: V1–hV4 pRFs and filter-bank tuning plus higher areas, NSD-like noise
ceilings; 2,000 voxels), each image seen once, a 9:1 train/test split. Then the documented flow
(docs/own-data.md) through the Python API: import → zoo adaptation
(`zoo train --init-from builtin:insilico-64 --minutes N`) → extract → train (`small` preset, 10 training
images held out) → decode the held-out images once per decode setting (z distribution matching on/off; z from
the neural decoder, the ridge baseline or their mean) → decode and sampler settings
(``sampling.validate.SMALL_GRID``: those × img2img strength × guidance) chosen on them → the decoders refit on
every training trial → decode (+ ridge) → reconstruct → `evaluate --native` with the mean-image and
pixel-ridge baselines.

Writes benchmarks/results/own_data.json (per-image values kept) and prints the table.
Goal: NeuralDiffuser beats the mean image and pixel ridge on PCC, MSE and whole-map SSIM; whole run
≤ 20 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def digits(n: int, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` scikit-learn digits as uint8 (n, side, side) and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(d.images[:n] / 16.0 * 255, 0, 255).astype(np.uint8)
    up = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BICUBIC)) for im in x])
    return up, d.target[:n]


def make_arrays(work: Path, n: int, voxels: int, seed: int) -> dict:
    """Stimuli, labels, betas and test indices as a user would have them (files in ``work/arrays``)."""
    from neuraldiffuser.simulate.responses import simulate_responses

    arrays = work / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    images, labels = digits(n)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # presentation order
    betas, _ = simulate_responses(np.repeat(images[..., None], 3, -1), order, voxels, seed)
    test = np.sort(rng.choice(n, size=max(1, n // 10), replace=False))
    np.save(arrays / "stimuli.npy", images)
    np.save(arrays / "labels.npy", labels)
    np.save(arrays / "betas.npy", betas)
    np.save(arrays / "image_index.npy", order)
    np.savetxt(arrays / "test_images.txt", test, fmt="%d")
    return {"arrays": arrays, "test": test}


def timed(log: dict, name: str):
    class _T:
        def __enter__(self):
            self.t = time.perf_counter()
            print(f"== {name}", flush=True)

        def __exit__(self, *exc):
            log[name] = round(time.perf_counter() - self.t, 1)
            print(f"   {name}: {log[name]} s", flush=True)

    return _T()


def vae_ceiling(zoo: str, ds, images: np.ndarray) -> dict:
    """How well a stack's autoencoder alone reproduces the test stimuli at their own size (the ceiling of any
    reconstruction through it): the scenes zoo against the adapted one."""
    import torch

    from neuraldiffuser.config.sections.zoo import ZooConfig
    from neuraldiffuser.data.fit import to_stack, to_stimulus
    from neuraldiffuser.evaluation.native import as_float, score_pairs
    from neuraldiffuser.zoo.loader import Components

    comp = Components(ZooConfig(path=zoo))
    stim = ds.images.get(images)
    x = torch.from_numpy(to_stack(stim, comp.resolution)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        rec = comp.vae.decode(comp.vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    out = ((rec + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    mode, size = ds.meta["stimulus_mode"], tuple(ds.meta["stimulus_size"])
    vals = score_pairs(as_float(stim, mode), as_float(to_stimulus(out, size, mode), mode))
    return {k: round(float(v.mean()), 4) for k, v in vals.items()}


def train_run(cfg, run_dir: Path, targets: Path) -> Path:
    from neuraldiffuser.config import save_config
    from neuraldiffuser.training.runner import train_decoders

    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir)
    train_decoders(cfg, run_dir, targets)
    return run_dir


def run(args) -> dict:
    from neuraldiffuser.config import load_config
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.data.importer import import_dataset
    from neuraldiffuser.evaluation.native import native_evaluation
    from neuraldiffuser.evaluation.recon import read_recon_manifest as read_manifest
    from neuraldiffuser.sampling.processes import reconstruct_in_processes
    from neuraldiffuser.sampling.validate import SMALL_GRID, choose_sampler_settings, decode_holdout_settings
    from neuraldiffuser.targets.extract import extract_targets
    from neuraldiffuser.training.autoscale import adapt_to_data
    from neuraldiffuser.training.decode import decode_test
    from neuraldiffuser.zoo.train.adapt import adapt_zoo

    work = args.work
    reuse = args.reuse and (work / "zoo_log.json").is_file()
    if work.exists():
        for p in work.iterdir() if reuse else [work]:
            if not (reuse and p.name in ("arrays", "dataset", "zoo", "zoo_log.json")):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with timed(seconds, "arrays"):
        made = make_arrays(work, args.trials, args.voxels, args.seed)
    a = made["arrays"]
    with timed(seconds, "import"):
        shutil.rmtree(work / "dataset", ignore_errors=True)
        ds_dir = import_dataset(
            work / "dataset",
            a / "stimuli.npy",
            a / "betas.npy",
            image_index=a / "image_index.npy",
            test=np.loadtxt(a / "test_images.txt", dtype=np.int64).tolist(),
            labels=a / "labels.npy",
            caption_template="a handwritten digit {label}",
        )
    zoo_path = str(work / "zoo")
    if args.no_adapt:  # the comparison: the scenes stack as shipped
        zoo_path, zoo_log = (
            "builtin:insilico-64",
            {
                "minutes": 0,
                "parts": {},
                "quality_before": None,
                "quality_after": None,
                "quality_line": "not adapted",
            },
        )
    elif reuse:  # development only: the JSON says so and its total leaves the adaptation out
        zoo_log = json.loads((work / "zoo_log.json").read_text())
        seconds["zoo adaptation (reused)"] = zoo_log["seconds"]
    else:
        with timed(seconds, "zoo adaptation"):
            zoo_log = adapt_zoo(ds_dir, zoo_path, "builtin:insilico-64", args.minutes, seed=args.seed)
        (work / "zoo_log.json").write_text(json.dumps({**zoo_log, "seconds": seconds["zoo adaptation"]}))
    print("  ", zoo_log["quality_line"])
    ceiling = {
        name: vae_ceiling(path, open_dataset(ds_dir), made["test"])
        for name, path in (
            ("scenes zoo", "builtin:insilico-64"),
            ("used zoo" if args.no_adapt else "adapted zoo", zoo_path),
        )
    }
    print("   autoencoder alone on the test stimuli:", ceiling, flush=True)
    cfg = load_config(
        "small",
        overrides={"data": {"path": str(ds_dir)}, "zoo": {"path": zoo_path}, "train": {"tensorboard": False}},
    )
    ds = open_dataset(ds_dir)
    cfg = adapt_to_data(cfg, ds)
    val_holdout = cfg.data.holdout_images
    with timed(seconds, "extract"):
        targets = extract_targets(cfg, ds, work / "targets.hdf5")
    with timed(seconds, "train (held-out images out)"):
        val_dir = train_run(cfg, work / "run_validation", targets)
    chosen, table = (
        {
            **{k: getattr(cfg.decode, k) for k in ("z_match", "z_ridge_weight")},
            **{k: getattr(cfg.sampler, k) for k in ("strength", "kappa", "eta")},
        },
        [],
    )
    cfg.sampler.repeats = 1
    if cfg.data.holdout_images:
        with timed(seconds, "sampler validation"):
            held = decode_holdout_settings(cfg, val_dir, val_dir, SMALL_GRID)
            chosen, table = choose_sampler_settings(
                cfg, held, work / "validation", SMALL_GRID, workers=args.workers
            )
        print("   chosen on held-out training images:", chosen, flush=True)
    final = cfg.model_copy(deep=True)  # refit on every training trial with the chosen settings
    final.data.holdout_images = 0
    final = adapt_to_data(final, ds)
    final.decode.z_match, final.decode.z_ridge_weight, final.sampler.strength, final.sampler.repeats = (
        chosen["z_match"],
        chosen["z_ridge_weight"],
        chosen["strength"],
        args.repeats,
    )
    with timed(seconds, "train (all training trials)"):
        run_dir = train_run(final, work / "run", targets)
    with timed(seconds, "decode"):
        decoded = decode_test(final, run_dir, run_dir / "decoded.hdf5")
        decoded_ridge = decode_test(final, run_dir, run_dir / "decoded_ridge.hdf5", method="ridge")
    sweep = {"kappa": [chosen["kappa"]], "eta": [chosen["eta"]]}
    with timed(seconds, "reconstruct"):
        nd = reconstruct_in_processes(decoded, work / "recon", final, args.workers, sweep=sweep)
        rd = reconstruct_in_processes(
            decoded_ridge, work / "recon", final, args.workers, method="ridge", sweep=sweep
        )
    with timed(seconds, "evaluate"):
        doc = native_evaluation([read_manifest(f) for f in [*nd, *rd]], ds, "subj01", final.data.test_repeats)
    cfg = final
    seconds["total"] = round(time.perf_counter() - t0, 1)
    rows = {r["method"]: r["values"] for r in doc["rows"]}
    nd_v = rows["neuraldiffuser"]
    beats = {
        f"{m}_{b}": (nd_v[m]["mean"] > rows[b][m]["mean"])
        if doc["metrics"][m]["higher_is_better"]
        else (nd_v[m]["mean"] < rows[b][m]["mean"])
        for m in ("pcc", "mse", "ssim_wang")
        for b in ("mean_image", "pixel_ridge")
    }
    return {
        "benchmark": "own_data",
        "command": "python benchmarks/own_data.py "
        + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k not in ("work", "out", "no_adapt", "reuse")
        )
        + (" --no-adapt" if args.no_adapt else "")
        + (" --reuse (zoo adaptation reused from an earlier run, not in the total)" if reuse else ""),
        "data": {
            "stimuli": f"scikit-learn load_digits, first {args.trials}, 8×8 → 28×28 bicubic, greyscale",
            "voxels": args.voxels,
            "responses": "neuraldiffuser.simulate.responses (NSD-like noise ceilings, one trial per image)",
            "test_images": made["test"].tolist(),
        },
        "zoo_adaptation": {
            **{
                k: zoo_log[k] for k in ("minutes", "parts", "quality_before", "quality_after", "quality_line")
            },
            "autoencoder_on_test_stimuli": ceiling,
        },
        "config": {
            "train": {
                k: getattr(cfg.train, k) for k in ("stages", "batch_size", "epoch_samples", "finetune_epochs")
            },
            "holdout_images_for_validation": val_holdout,
            "decode_z_match": cfg.decode.z_match,
            "decode_z_ridge_weight": cfg.decode.z_ridge_weight,
            "sampler": {**chosen, "steps": cfg.sampler.steps, "repeats": cfg.sampler.repeats},
        },
        "validation": table,
        "seconds": seconds,
        "cpu_threads": os.environ.get("OMP_NUM_THREADS"),
        "goal": {
            "beats": beats,
            "met": all(beats.values()),
            "under_20_min": None if reuse else seconds["total"] <= 1200,
        },
        "native": doc,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/own_data"), help="Working folder (replaced).")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--voxels", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=5.0, help="Zoo adaptation budget.")
    ap.add_argument("--repeats", type=int, default=2, help="Reconstructions per image.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-adapt", action="store_true", help="Use the shipped scenes stack as it is (the comparison run)."
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="Development: keep WORK's arrays, dataset and adapted zoo from an earlier run with "
        "the same arguments (the total then leaves the adaptation out, and the JSON says so).",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "own_data.json")
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\n{'method':<16}{'PCC':>8}{'MSE':>9}{'SSIM(Wang)':>12}{'SSIM(skimage)':>15}")
    for r in result["native"]["rows"]:
        v = r["values"]
        print(
            f"{r['method']:<16}{v['pcc']['mean']:>8.4f}{v['mse']['mean']:>9.4f}{v['ssim_wang']['mean']:>12.4f}{v['ssim_skimage']['mean']:>15.4f}"
        )
    print(
        f"goal met: {result['goal']['met']} ({result['goal']['beats']}); "
        f"total {result['seconds']['total']} s → {args.out}"
    )


if __name__ == "__main__":
    main()
