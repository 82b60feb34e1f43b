"""Sampler speed and memory: our sampler against a loop with the released code's structure, at equal outputs.

Both run in this one process on the CPU, one image with R repeats and the paper's flags (κ, η, SAG, CFG, the
released x̂0, noise level and burned draws), on:
  * SD v1.4's published UNet/VAE architecture (random weights, ``zoo.build.sd14_configs``) at reduced
    resolutions, with the ViT-B/32 guidance tower and CLIP-L text tower, also random;
  * the mini zoo (``builtin:insilico-64``) when it is installed.
The reference-structure loop (``sampling/reference.py``) runs the repeats one at a time, decodes every
intermediate latent and re-runs the conditional UNet with autograd through unfrozen weights on guided steps.
Each measurement runs in a fresh child process (so neither inherits the other's allocator pool) on one image;
time is wall-clock and CPU time of that process, peak memory its maximum resident set size, also given as the
increase over the size just before sampling (the models already loaded).

    python benchmarks/sampler.py                     # 64 and 128 px SD architecture + the mini zoo if present
    python benchmarks/sampler.py --resolutions 64 --threads 2

Writes benchmarks/results/sampler.json and prints a table. Exits non-zero if the outputs differ.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from neuraldiffuser.config.sections.sampler import SamplerConfig
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.sampling.reference import reference_sample
from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
from neuraldiffuser.utils.io import atomic_write_json
from neuraldiffuser.zoo.loader import Components

ROOT = Path(__file__).resolve().parent


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sd14_components(side: int, tmp: str) -> Components:
    """SD v1.4's architecture with random weights, held in memory (nothing written but the tokenizer)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModel

    from neuraldiffuser.zoo.build import SD_SCHEDULER, sd14_configs
    from neuraldiffuser.zoo.guidance import GuidanceEncoder
    from neuraldiffuser.zoo.tokenizer import write_clip_tokenizer

    cfg = sd14_configs(unet_sample_size=side // 8)
    torch.manual_seed(0)
    comp = Components(ZooConfig(path=tmp))
    frozen = lambda m: m.eval().requires_grad_(False)  # noqa: E731
    comp.__dict__.update(
        unet=frozen(UNet2DConditionModel(**cfg["unet"])),
        vae=frozen(AutoencoderKL(**cfg["vae"])),
        scheduler=DDIMScheduler(**SD_SCHEDULER),
        tokenizer=CLIPTokenizer.from_pretrained(write_clip_tokenizer(Path(tmp) / "tokenizer")),
        text_encoder=frozen(CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))),
        guidance=frozen(
            GuidanceEncoder(CLIPVisionModel(CLIPVisionConfig(**cfg["vision"])), [0, 1, 2, 3, 4, 5])
        ),
    )
    return comp


def targets(comp: Components):
    """c from a caption, z from a smooth image through the VAE, g from another image: realistic magnitudes."""
    gen = torch.Generator().manual_seed(0)
    side = comp.resolution

    def smooth():
        return torch.nn.functional.interpolate(
            torch.rand(1, 3, 8, 8, generator=gen), size=(side, side), mode="bicubic"
        ).clamp(0, 1)

    with torch.no_grad():
        c = comp.encode_text(["a red circle above a blue square on grass"])[0]
        z = comp.vae.encode(smooth() * 2 - 1).latent_dist.mode()[0] * comp.latent_scale
        g = comp.guidance(smooth())[0]
    return c, z, g


def load(stack: str, side: int, tmp: str) -> Components:
    return sd14_components(side, tmp) if stack == "sd14-architecture" else Components(ZooConfig(path=stack))


def measure(which: str, stack: str, side: int, cfg: SamplerConfig, threads: int, queue) -> None:
    """Child process: load the stack, run one sampler on one image, report images, times and peak memory."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        comp = load(stack, side, tmp)
        c, z, g = targets(comp)
        with torch.no_grad():  # first call of every kernel outside the timings
            comp.unet(z[None], 500, encoder_hidden_states=c[None])
        before = rss_bytes()
        wall, cpu = time.perf_counter(), time.process_time()
        if which == "ours":
            out = NeuralDiffuserSampler(comp, cfg)(c, z, g, seed=42)
        else:
            out = reference_sample(comp, cfg, c, z, g, seed=42, decode_all=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        guided = NeuralDiffuserSampler(comp, cfg).plan.guided_steps
    queue.put(
        {
            "images": out.numpy(),
            "wall": wall,
            "cpu": cpu,
            "peak_mib": peak / 2**20,
            "extra_mib": (peak - before) / 2**20,
            "resolution": comp.resolution,
            "guided_steps": guided,
        }
    )


def run_child(which: str, stack: str, side: int, cfg: SamplerConfig, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=measure, args=(which, stack, side, cfg, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def bench(stack: str, side: int, cfg: SamplerConfig, threads: int, tol: float) -> dict:
    ours = run_child("ours", stack, side, cfg, threads)
    ref = run_child("reference", stack, side, cfg, threads)
    a, b = torch.from_numpy(ours["images"]), torch.from_numpy(ref["images"])
    diff = float((a - b).abs().max())
    row = {
        "stack": stack,
        "resolution": ours["resolution"],
        "repeats": cfg.repeats,
        "steps": cfg.steps,
        "eta": cfg.eta,
        "kappa": cfg.kappa,
        "guided_steps": ours["guided_steps"],
        "ours_s_per_image": ours["wall"],
        "reference_s_per_image": ref["wall"],
        "time_ratio": ours["wall"] / ref["wall"],
        "ours_cpu_s_per_image": ours["cpu"],
        "reference_cpu_s_per_image": ref["cpu"],
        "cpu_time_ratio": ours["cpu"] / ref["cpu"],
        "ours_peak_rss_mib": ours["peak_mib"],
        "reference_peak_rss_mib": ref["peak_mib"],
        "ours_peak_extra_mib": ours["extra_mib"],
        "reference_peak_extra_mib": ref["extra_mib"],
        "max_abs_diff": diff,
        "tolerance": tol,
        "equal": diff <= tol,
        "saturated_fraction": float(((a == 0) | (a == 1)).float().mean()),
        "repeat_spread": float((a - a.mean(0)).abs().mean()),
    }
    print_row(row)
    return row


def print_row(r: dict) -> None:
    print(
        f"{r['stack']:<20} {r['resolution']:>4}px | ours {r['ours_s_per_image']:7.1f} s wall "
        f"{r['ours_cpu_s_per_image']:7.1f} s cpu {r['ours_peak_rss_mib']:6.0f} MiB peak "
        f"(+{r['ours_peak_extra_mib']:.0f}) | reference {r['reference_s_per_image']:7.1f} s "
        f"wall {r['reference_cpu_s_per_image']:7.1f} s cpu "
        f"{r['reference_peak_rss_mib']:6.0f} MiB peak (+{r['reference_peak_extra_mib']:.0f}) "
        f"| ratio wall {r['time_ratio']:.2f} cpu {r['cpu_time_ratio']:.2f} | max|Δ| "
        f"{r['max_abs_diff']:.1e} ({'equal' if r['equal'] else 'DIFFERENT'})",
        flush=True,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--resolutions",
        type=int,
        nargs="*",
        default=[64, 128],
        help="SD-architecture pixel sizes (multiples of 64)",
    )
    p.add_argument("--zoo", default="builtin:insilico-64", help="mini zoo to add if installed ('' to skip)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--eta", type=float, default=0.2)
    p.add_argument("--kappa", type=float, default=3e5)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)"
    )
    p.add_argument(
        "--tol", type=float, default=1e-3, help="largest |ours − reference| allowed on [0, 1] images"
    )
    p.add_argument("--out", type=Path, default=ROOT / "results" / "sampler.json")
    p.add_argument(
        "--merge", action="store_true", help="keep rows of other stacks/resolutions already in --out"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = SamplerConfig(
        steps=args.steps,
        repeats=args.repeats,
        eta=args.eta,
        kappa=args.kappa,
        autocast="off",
        x0_formula="released",
        noise_timestep="released",
        burn_draws=40,
        image_seed="same",
    )
    rows = [bench("sd14-architecture", side, cfg, args.threads, args.tol) for side in args.resolutions]
    if args.zoo:
        try:
            Components(ZooConfig(path=args.zoo)).unet  # noqa: B018  (raises if the zoo is not installed)
        except Exception as exc:  # noqa: BLE001
            print(f"skipping {args.zoo}: {exc}", file=sys.stderr)
        else:
            rows.append(bench(args.zoo, 0, cfg, args.threads, args.tol))
    if args.merge and args.out.is_file():
        import json

        new = {(r["stack"], r["resolution"]) for r in rows}
        rows = [
            r for r in json.loads(args.out.read_text())["rows"] if (r["stack"], r["resolution"]) not in new
        ] + rows
    doc = {
        "benchmark": "sampler",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "device": "cpu",
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "sampler": cfg.model_dump(),
        "target": "ours <= 0.5 x reference at equal outputs",
        "rows": rows,
    }
    atomic_write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0 if all(r["equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
