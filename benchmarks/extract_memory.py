"""Memory per image of `extract` at 512 px, on the real architectures (random weights), CPU fp32.

Each target runs what ``targets/extract.py`` runs for it, in a fresh child process per (target, batch size):
  * z: SD v1.4's VAE encoder (``AutoencoderKL`` from the published config) on 512 px images, posterior sample;
  * c: CLIP ViT-L/14's text encoder on 5 captions per image (NSD has ~5 per COCO image), 77 tokens each;
  * g: CLIP ViT-B/32's vision tower through the guidance hooks (blocks 1–6) on 224 px images.
The peak resident set size of the child (``ru_maxrss``) minus its size just before the batch, with the model
built and one warm-up call at batch 1 done, is the batch's working memory; a least-squares line over the batch
sizes gives MiB per image (slope) and a fixed part (intercept). Weights are counted separately
(parameters × 4 bytes).

    python benchmarks/extract_memory.py                 # batches 1, 2, 4
    python benchmarks/extract_memory.py --batches 1 2 4 8

Writes benchmarks/results/extract_memory.json and prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
CAPTIONS_PER_IMAGE = 5


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(target: str):
    """(model, run(batch)) for one target, SD v1.4 / CLIP architectures with random weights."""
    from neuraldiffuser.zoo.build import sd14_configs

    cfg = sd14_configs(unet_sample_size=64)
    torch.manual_seed(0)
    if target == "z":
        from diffusers import AutoencoderKL

        model = AutoencoderKL(**cfg["vae"]).eval().requires_grad_(False)

        def run(b: int):
            x = torch.rand(b, 3, 512, 512) * 2 - 1
            dist = model.encode(x).latent_dist
            return dist.mean + dist.std * torch.randn_like(dist.mean)

    elif target == "c":
        from transformers import CLIPTextConfig, CLIPTextModel

        model = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"])).eval().requires_grad_(False)

        def run(b: int):
            ids = torch.randint(0, 49407, (b * CAPTIONS_PER_IMAGE, 77))
            return model(ids).last_hidden_state.view(b, CAPTIONS_PER_IMAGE, 77, -1).mean(1)

    else:
        from transformers import CLIPVisionConfig, CLIPVisionModel

        from neuraldiffuser.zoo.guidance import GuidanceEncoder

        model = (
            GuidanceEncoder(CLIPVisionModel(CLIPVisionConfig(**cfg["vision"])), [0, 1, 2, 3, 4, 5])
            .eval()
            .requires_grad_(False)
        )

        def run(b: int):
            return model(torch.rand(b, 3, 224, 224))

    return model, run


def child(target: str, batch: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    model, run = build(target)
    with torch.no_grad():
        run(1)  # first call of every kernel outside the measurement
        before = rss_bytes()
        t = time.perf_counter()
        out = run(batch)
        wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = sum(p.numel() for p in model.parameters())
    queue.put(
        {
            "target": target,
            "batch": batch,
            "extra_mib": (peak - before) / 2**20,
            "wall_s": wall,
            "params": params,
            "out_shape": list(out.shape),
        }
    )


def measure(target: str, batch: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(target, batch, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def fit(rows: list[dict]) -> tuple[float, float]:
    """(MiB per image, fixed MiB) of a least-squares line through (batch, extra MiB)."""
    b = np.array([r["batch"] for r in rows], float)
    m = np.array([r["extra_mib"] for r in rows], float)
    slope, intercept = np.polyfit(b, m, 1)
    return float(slope), float(intercept)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--targets", nargs="+", default=["z", "c", "g"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "results" / "extract_memory.json"))
    args = ap.parse_args(argv)
    from neuraldiffuser.utils.io import atomic_write_json

    results: dict = {
        "device": "cpu",
        "dtype": "float32",
        "resolution_z": 512,
        "captions_per_image": CAPTIONS_PER_IMAGE,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "targets": {},
    }
    print(f"{'target':6} {'batch':>5} {'extra MiB':>10} {'wall s':>8}")
    for target in args.targets:
        rows = []
        for b in args.batches:
            r = measure(target, b, args.threads)
            rows.append(r)
            print(f"{target:6} {b:5d} {r['extra_mib']:10.0f} {r['wall_s']:8.2f}", flush=True)
        slope, intercept = fit(rows)
        results["targets"][target] = {
            "per_batch": rows,
            "mib_per_image": slope,
            "fixed_mib": intercept,
            "weights_mib_fp32": rows[0]["params"] * 4 / 2**20,
            "params": rows[0]["params"],
        }
        print(
            f"{target:6} per image {slope:.0f} MiB, fixed {intercept:.0f} "
            f"MiB, weights {rows[0]['params'] * 4 / 2**20:.0f} MiB fp32",
            flush=True,
        )
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
