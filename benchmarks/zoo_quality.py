"""Quality and speed of a zoo stack on held-out in-silico scenes (the numbers of issue 4).

    python benchmarks/zoo_quality.py                       # the shipped builtin:insilico-64
    python benchmarks/zoo_quality.py --zoo /path/to/stack --kappa 1e3 --kappa 3e3

Held-out scenes come from ``generate_scenes`` with a seed the zoo was not trained on (999; the shipped
zoo was trained on seed 11). Measures (see ``neuraldiffuser.zoo.train.quality``): reconstruction SSIM,
mini-CLIP image→caption retrieval, text-to-image retrieval, img2img SSIM unguided and guided (one line
per κ), and the sampler's seconds per image at R repeats. Prints a table; writes JSON to
benchmarks/results/zoo_quality.json (and, with --write-zoo-json, the zoo's own quality.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch


def sampler_speed(comp, sampler_cfg, n_images: int, repeats: int) -> float:
    """Seconds per image of the full NeuralDiffuser sampler (CFG + SAG + g guidance) at
    ``repeats`` repeats."""
    from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
    from neuraldiffuser.simulate.scenes import generate_scenes

    scenes = generate_scenes(n_images, 1234)
    x = torch.from_numpy(scenes.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        z = comp.vae.encode(x * 2 - 1).latent_dist.mode() * comp.latent_scale
        c = comp.encode_text([caps[0] for caps in scenes.captions])
        g = comp.guidance(x)
    sampler = NeuralDiffuserSampler(comp, sampler_cfg.model_copy(update={"repeats": repeats}))
    sampler(c[0], z[0], g[0], seed=0)  # warm-up
    t0 = time.perf_counter()
    for i in range(n_images):
        sampler(c[i], z[i], g[i], seed=i)
    return (time.perf_counter() - t0) / n_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", default="builtin:insilico-64")
    ap.add_argument(
        "--held-out", default=None, help="dataset folder (default: 1000 scenes of seed 999, generated here)"
    )
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument(
        "--kappa",
        type=float,
        action="append",
        help="κ of the guided img2img (repeatable; default: the mini preset's)",
    )
    ap.add_argument("--repeats", type=int, default=2, help="repeats for the speed measurement")
    ap.add_argument("--speed-images", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--write-zoo-json", action="store_true", help="also write quality.json into the zoo folder (first κ)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from neuraldiffuser.config import load_config
    from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
    from neuraldiffuser.zoo.loader import Components, resolve_path
    from neuraldiffuser.zoo.train.quality import measure_quality

    cfg = load_config(preset="mini")
    zoo = cfg.zoo.model_copy(update={"path": args.zoo})
    held = args.held_out
    if held is None:
        from neuraldiffuser.simulate.scenes import write_scene_dataset

        held = write_scene_dataset(Path(tempfile.mkdtemp()) / "heldout", max(args.n, 100), 999)
    kappas = args.kappa or [cfg.sampler.kappa]
    runs = []
    for i, kappa in enumerate(kappas):
        out = Path(resolve_path(zoo.path)) / "quality.json" if (args.write_zoo_json and i == 0) else None
        res = measure_quality(
            zoo,
            held,
            out,
            n=args.n,
            sampler=cfg.sampler.model_copy(update={"kappa": kappa}),
            make_sampler=NeuralDiffuserSampler,
        )
        runs.append(res)
    comp = Components(zoo)
    speed = sampler_speed(
        comp, cfg.sampler.model_copy(update={"kappa": kappas[0]}), args.speed_images, args.repeats
    )

    s = runs[0]["summary"]
    print(f"{'measure':34s} {'value':>8s} {'target':>8s}")
    for key, target in s["targets"].items():
        print(f"{key:34s} {s[key]:8.3f} {target:8.2f}")
    for res in runs:
        g = res["img2img"]["guided"]
        print(
            f"{'img2img guided ssim (κ=' + format(g['kappa'], 'g') + ')':34s} "
            f"{g['ssim']:8.3f} {'> unguided':>8s}"
        )
    print(f"{'sampler s/image (R=' + str(args.repeats) + ')':34s} {speed:8.2f}")
    result = {
        "zoo": args.zoo,
        "runs": runs,
        "sampler_seconds_per_image": speed,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    out = Path(__file__).parent / "results" / "zoo_quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
