"""GPU check at paper scale on random-weight stand-ins (no downloads): the figures docs/paper-scale.md needs.

On the stand-ins of ``paper_standins.py`` (SD v1.4 UNet/VAE/text encoder, CLIP ViT-B/32; the real
architectures, random weights, read from a Hugging Face cache offline) and the `paper` preset:
  1. extract: images/s for z + c + g at 512 px (64 images, the preset's batch of 32; the
     second of two passes);
  2. reconstruct: s/image at 512 px with the preset's sampler (fp16 autocast, 5 repeats, CFG, SAG, 37 steps),
     κ = 3e5 (7 guided steps) and κ = 0, each after one warm-up image; peak GPU memory of each;
  3. train: steps/s of the H = 4096 c model on subject 1's 15,724 voxels (fp16 mixed precision, batch 42),
     timed per step after 3 warm-up steps, checkpoints written only at the end.
Budget: ≤ 8 min on one H100 (most of it building and writing the 1.2 B parameters of stand-ins).

    bash benchmarks/gpu_check.sh                         # cuda, the paper's sizes
    python benchmarks/gpu_check.py --device cpu --tiny   # smoke test: tiny stack, seconds

Writes benchmarks/results/gpu_check.json (``--out`` elsewhere) and prints a table.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import paper_standins as ps  # noqa: E402


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def config(tiny: bool, device: str, overrides: dict | None = None):
    from neuraldiffuser.config import load_config
    from neuraldiffuser.config.load import deep_merge

    base = {"extract": {"device": device}, "evaluate": {"device": device}}
    if tiny:  # the tiny stack's 16 px latents are 8 × 8: the z decoder upsamples 2 × 2 → 8 × 8
        base = deep_merge(
            base,
            {
                "decoder": {
                    "hidden": 64,
                    "z_hidden": 64,
                    "prior_depth": 1,
                    "prior_heads": 2,
                    "z_up_channels": [8, 8, 8],
                    "z_map_channels": 8,
                    "z_norm_groups": 4,
                    "proj_depth": 1,
                }
            },
        )
    return load_config(preset="paper", overrides=deep_merge(base, overrides or {}))


def check_extract(nsd: Path, work: Path, tiny: bool, device) -> dict:
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.targets.extract import extract_targets
    from neuraldiffuser.zoo.loader import Components

    cfg = config(tiny, str(device))
    ds = open_dataset(nsd)
    comp = Components(cfg.zoo, device=device)
    times = []
    for k in range(2):  # the first pass includes the models' load and the kernels' first calls
        reset_memory(device)
        sync(device)
        t = time.perf_counter()
        extract_targets(cfg, ds, work / f"targets{k}.hdf5", components=comp, overwrite=True)
        sync(device)
        times.append(time.perf_counter() - t)
    n = len(ds.images)
    return {
        "images": n,
        "batch_size": cfg.extract.batch_size,
        "resolution": comp.resolution,
        "seconds": times,
        "images_per_s": n / times[-1],
        "peak_gib": peak_gib(device),
        "store": str(work / "targets1.hdf5"),
    }


def sampler_inputs(comp, store_path: Path, device):
    import torch

    from neuraldiffuser.targets.store import TargetStore

    with TargetStore(store_path) as st:
        c, z, g = (torch.from_numpy(st.get(k, [0])[0]).float().to(device) for k in ("c", "z", "g"))
    return c, z, g


def check_reconstruct(store: Path, tiny: bool, device, repeats: int) -> dict:
    from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
    from neuraldiffuser.zoo.loader import Components

    out = {}
    comp = None
    for kappa in (3e5, 0.0):
        cfg = config(tiny, str(device), {"sampler": {"kappa": kappa, "repeats": repeats}})
        comp = comp or Components(cfg.zoo, device=device)
        c, z, g = sampler_inputs(comp, store, device)
        sampler = NeuralDiffuserSampler(comp, cfg.sampler)
        sampler(c, z, g, seed=41)  # warm-up image
        reset_memory(device)
        sync(device)
        t = time.perf_counter()
        images = sampler(c, z, g, seed=42)
        sync(device)
        out[f"kappa={kappa:g}"] = {
            "s_per_image": time.perf_counter() - t,
            "repeats": repeats,
            "guided_steps": sampler.plan.guided_steps,
            "steps": len(sampler.plan.timesteps) if hasattr(sampler.plan, "timesteps") else None,
            "autocast": cfg.sampler.autocast if device.type == "cuda" else "off (CPU)",
            "peak_gib": peak_gib(device),
            "image_shape": list(images.shape),
        }
    return out


def check_train(nsd: Path, store: Path, work: Path, tiny: bool, device, steps: int) -> dict:
    from neuraldiffuser.training import loop
    from neuraldiffuser.training.runner import train_decoders

    cfg = config(
        tiny,
        str(device),
        {
            "data": {"path": str(nsd)},
            "decoder": {"targets": ["c"]},
            "train": {
                "stages": ["finetune"],
                "finetune_epochs": 1,
                "epoch_samples": 42 * steps,
                "checkpoint_every": 10**6,
                "tensorboard": False,
                "ridge": False,
                "cpu": device.type == "cpu",
                "mixed_precision": "fp16" if device.type == "cuda" else "no",
            },
        },
    )
    times: list[float] = []
    original = loop.Trainer._step

    def timed(self, step, *inputs):
        sync(device)
        t = time.perf_counter()
        logs = original(self, step, *inputs)
        sync(device)
        times.append(time.perf_counter() - t)
        return logs

    loop.Trainer._step = timed
    reset_memory(device)
    try:
        summary = train_decoders(cfg, work / "train", store)
    finally:
        loop.Trainer._step = original
    params = None
    from safetensors import safe_open

    for path in (work / "train").rglob("model/*.safetensors"):
        with safe_open(str(path), "pt") as f:
            params = (params or 0) + sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    timed_steps = times[3:] or times
    return {
        "steps": len(times),
        "batch_size": cfg.train.batch_size,
        "hidden": cfg.decoder.hidden,
        "mixed_precision": cfg.train.mixed_precision,
        "steps_per_s": 1 / statistics.median(timed_steps),
        # seconds the step thread waited for its inputs (the reader thread's gather, mixup, host→device copy)
        "data_wait_s": [r.get("data_wait_s") for r in summary.get("runs", [])],
        "step_s": timed_steps,
        "params": params,
        "peak_gib": peak_gib(device),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="the tiny stack and few voxels: a smoke test of this script on a CPU",
    )
    ap.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "results" / "gpu_check.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(args.work or tmp)
        ps.use_cache(work / "hf")
        import torch

        device = torch.device(args.device)
        t0 = time.perf_counter()
        counts = ps.build_models(work / "hf", 64, evaluation=False, tiny=args.tiny)
        voxels = {"subj01": 300} if args.tiny else None
        nsd = ps.build_nsd(work / "nsd", ["subj01"], train_images=8 if args.tiny else 60, voxels=voxels)
        build_s = time.perf_counter() - t0
        print(f"stand-ins and data built in {build_s:.0f} s", flush=True)
        ext = check_extract(nsd, work, args.tiny, device)
        print(f"extract: {ext['images_per_s']:.2f} images/s at {ext['resolution']} px", flush=True)
        rec = check_reconstruct(Path(ext["store"]), args.tiny, device, args.repeats)
        for k, v in rec.items():
            print(
                f"reconstruct {k}: {v['s_per_image']:.2f} s/image "
                f"({v['repeats']} repeats), peak {v['peak_gib']} GiB",
                flush=True,
            )
        tr = check_train(nsd, Path(ext["store"]), work, args.tiny, device, args.train_steps)
        print(
            f"train c model: {tr['steps_per_s']:.2f} steps/s (batch "
            f"{tr['batch_size']}, H {tr['hidden']}, {tr['params']} parameters)",
            flush=True,
        )
        doc = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "tiny": args.tiny,
            "torch": torch.__version__,
            "machine": platform.node(),
            "params": counts,
            "build_s": build_s,
            "extract": ext,
            "reconstruct": rec,
            "train": tr,
            "total_s": time.perf_counter() - t0,
        }
    from neuraldiffuser.utils.io import atomic_write_json

    atomic_write_json(args.out, doc)
    print(f"wrote {args.out} in {doc['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
