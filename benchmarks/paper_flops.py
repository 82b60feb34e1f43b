"""Counted FLOPs of the paper-scale models and the GPU time per stage they imply (an
estimate, not a measurement).

Every model is built on PyTorch's ``meta`` device from the published configs (SD v1.4 UNet/VAE, CLIP ViT-L/14
text, ViT-B/32 and ViT-L/14 vision, the `paper` preset's H = 4096 decoders with subject 1's 15,724 voxels) and
run under ``torch.utils.flop_counter.FlopCounterMode``: the FLOPs are counted from the real call graph at
512 px without computing anything. Backward passes through frozen models (the guidance path) count input
gradients only, as the sampler runs them. Stage totals multiply these by the preset's counts; GPU hours
divide by an assumed sustained throughput (``--tflops``, default 989 TFLOP/s dense fp16/bf16 of an H100 SXM
times ``--utilisation``, default 0.35 for the diffusion models and 0.25 for the decoders' small-batch
matmuls). The decoders' training steps are memory-bound at batch 42, so their time is the larger of the FLOP
time and 44 bytes per parameter per step (fp16 copies, gradients, AdamW) over ``--bandwidth`` (default 2 TB/s,
~60 % of an H100 SXM's 3.35 TB/s).

    python benchmarks/paper_flops.py

Writes benchmarks/results/paper_flops.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

# The preset's and NSD's counts (docs/paper-scale.md, docs/method-notes.md §4-5)
N_IMAGES = 73000
CAPTIONS = 5
TEST_IMAGES = 1000
TRAIN_TRIALS = 27000  # per subject, ~30,000 trials minus the shared1000 repeats
STEPS_PER_EPOCH = 30000 // 42
EPOCHS = 150
SUBJECTS = 8


def flops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def meta(build):
    with torch.device("meta"):
        return build().eval().requires_grad_(False)


def fwd_bwd(model_call, x: torch.Tensor) -> float:
    """Forward + input-gradient backward through a frozen model."""
    x = x.detach().requires_grad_(True)

    def run():
        out = model_call(x)
        out.float().sum().backward()

    return flops(run)


def diffusion_counts() -> dict[str, float]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from paper_standins import L14_VISION
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModel

    from neuraldiffuser.zoo.build import sd14_configs
    from neuraldiffuser.zoo.guidance import GuidanceEncoder

    cfg = sd14_configs(64)
    unet = meta(lambda: UNet2DConditionModel(**cfg["unet"]))
    vae = meta(lambda: AutoencoderKL(**cfg["vae"]))
    text = meta(lambda: CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"])))
    guide = meta(
        lambda: GuidanceEncoder(CLIPVisionModel(CLIPVisionConfig(**cfg["vision"])), [0, 1, 2, 3, 4, 5])
    )
    l14 = meta(lambda: CLIPVisionModel(CLIPVisionConfig(**L14_VISION)))
    with torch.device("meta"):
        lat, img, ctx = torch.randn(1, 4, 64, 64), torch.randn(1, 3, 512, 512), torch.randn(1, 77, 768)
        ids = torch.zeros(1, 77, dtype=torch.long)
        img224 = torch.randn(1, 3, 224, 224)
    return {
        "unet_fwd": flops(lambda: unet(lat, 500, encoder_hidden_states=ctx)),
        "unet_fwd_bwd": fwd_bwd(lambda x: unet(x, 500, encoder_hidden_states=ctx).sample, lat),
        "vae_enc_fwd": flops(lambda: vae.encode(img)),
        "vae_dec_fwd": flops(lambda: vae.decode(lat)),
        "vae_dec_fwd_bwd": fwd_bwd(lambda x: vae.decode(x).sample, lat),
        "text_fwd": flops(lambda: text(ids)),
        "guide_fwd": flops(lambda: guide(img)),
        "guide_fwd_bwd": fwd_bwd(guide, img),
        "clip_l14_fwd": flops(lambda: l14(img224)),
        "unet_params": sum(p.numel() for p in unet.parameters()),
        "vae_params": sum(p.numel() for p in vae.parameters()),
    }


def decoder_counts() -> dict[str, float]:
    """Forward FLOPs per sample of the c, one g and the z model (parameters touched per sample; the
    prior runs per token)."""
    import numpy as np

    from neuraldiffuser.config import load_config
    from neuraldiffuser.training.specs import build_model

    cfg = load_config(preset="paper").decoder
    voxels = 15724
    out = {}
    for name, shape in (("c", (77, 768)), ("g", (50, 768)), ("z", (4, 64, 64))):
        stats = {} if name == "z" else {name: (np.zeros(shape, np.float32), np.ones(shape, np.float32))}
        model = meta(
            lambda name=name, shape=shape, stats=stats: build_model(
                name, [name], {"subj01": voxels}, cfg, {name: shape}, stats, 768 if name == "z" else 0
            )
        )
        total = sum(p.numel() for p in model.parameters())
        prior = sum(p.numel() for n, p in model.named_parameters() if ".prior." in n)
        tokens = shape[0] if name != "z" else 1
        out[f"{name}_params"] = total
        out[f"{name}_fwd_per_sample"] = 2.0 * (total - prior) + 2.0 * prior * tokens
        if prior:
            out[f"{name}_prior_params"] = prior
    return out


# fp16 autocast copies of fp32 weights (6), their reads in the backward (2), fp32 grads (8), AdamW (28)
BYTES_PER_PARAM_STEP = 44


def stages(
    d: dict, m: dict, tflops: float, util_diff: float, util_dec: float, bandwidth: float
) -> dict[str, dict]:
    """Total FLOPs and GPU hours of each stage of one subject's paper run (extract: all 73k images, once)."""
    R, steps, guided = 5, 37, 7
    unguided_step = 3 * d["unet_fwd"]  # CFG (uncond + cond) + SAG's re-prediction
    guided_step = 2 * d["unet_fwd"] + d["unet_fwd_bwd"] + d["vae_dec_fwd_bwd"] + d["guide_fwd_bwd"]
    recon_image = R * (guided * guided_step + (steps - guided) * unguided_step + d["vae_dec_fwd"])
    train_steps = 2 * EPOCHS * STEPS_PER_EPOCH  # pretrain + fine-tune
    per_model = {k: 3 * m[f"{k}_fwd_per_sample"] * 42 * train_steps for k in ("c", "g", "z")}
    md_iter = 35 * 2 * d["unet_fwd_bwd"] + d["vae_dec_fwd_bwd"] + d["guide_fwd_bwd"]
    np_sample = (
        d["unet_fwd_bwd"] + 3 * 0.45 * d["unet_fwd"]
    )  # frozen UNet (input grads) + a trained ControlNet copy of its encoder (~45 % of its FLOPs)
    rows = {
        "extract": {
            "flops": N_IMAGES * (d["vae_enc_fwd"] + CAPTIONS * d["text_fwd"] + d["guide_fwd"]),
            "util": util_diff,
            "what": "73,000 images: VAE encoder 512 px + 5 captions + ViT-B/32 blocks 1-6",
        },
        "train (NeuralDiffuser, 8 models)": {
            "flops": per_model["c"] + 6 * per_model["g"] + per_model["z"],
            "util": util_dec,
            "what": f"c, g0-g5, z; 2 × {EPOCHS} epochs × {STEPS_PER_EPOCH} steps of 42; 3 × forward",
        },
        "decode": {
            "flops": TEST_IMAGES * 20 * 2 * (m["c_prior_params"] * 77 + 6 * m["g_prior_params"] * 50),
            "util": util_dec,
            "what": "1,000 test images, 20 prior steps (×2 for conditioning drop-out/CFG)",
        },
        "reconstruct (NeuralDiffuser, κ>0)": {
            "flops": TEST_IMAGES * recon_image,
            "util": util_diff,
            "what": f"1,000 images × {R} repeats × {steps} steps, {guided} guided",
        },
        "reconstruct (κ=0)": {
            "flops": TEST_IMAGES * R * (steps * unguided_step + d["vae_dec_fwd"]),
            "util": util_diff,
            "what": "the unguided ablation",
        },
        "reconstruct (MindDiffuser)": {
            "flops": TEST_IMAGES * 300 * md_iter,
            "util": util_diff,
            "what": "300 iterations × 35 steps (CFG) back-propagated + VAE decoder + ViT-B/32",
        },
        "train (NeuroPictor-style)": {
            "flops": (80 * SUBJECTS + 160 + 20) * TRAIN_TRIALS * np_sample,
            "util": util_diff,
            "what": "80 epochs over 8 subjects + 160 + 20 epochs on one, ~27,000 trials each",
        },
        "reconstruct (NeuroPictor-style)": {
            "flops": TEST_IMAGES * 50 * 2 * 1.45 * d["unet_fwd"],
            "util": util_diff,
            "what": "50 steps, CFG, UNet + ControlNet",
        },
        "evaluate": {
            "flops": TEST_IMAGES * (R + 1) * 3 * d["clip_l14_fwd"],
            "util": util_diff,
            "what": "CLIP ViT-L/14 ×3 for the other backbones, stimuli + 5 repeats",
        },
    }
    for r in rows.values():
        r["tflop"] = r["flops"] / 1e12
        r["gpu_hours"] = r["flops"] / (tflops * 1e12 * r["util"]) / 3600
    # The decoders' batch of 42 makes their step memory-bound: each step streams every parameter ~44 bytes.
    params = m["c_params"] + 6 * m["g_params"] + m["z_params"]
    mem_h = params * BYTES_PER_PARAM_STEP * train_steps / bandwidth / 3600
    dec = rows["train (NeuralDiffuser, 8 models)"]
    dec["memory_bound_hours"] = mem_h
    dec["gpu_hours"] = max(dec["gpu_hours"], mem_h)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--tflops", type=float, default=989.0, help="peak dense fp16/bf16 TFLOP/s (H100 SXM: 989)"
    )
    ap.add_argument("--utilisation", type=float, default=0.35)
    ap.add_argument("--decoder-utilisation", type=float, default=0.25)
    ap.add_argument(
        "--bandwidth",
        type=float,
        default=2.0e12,
        help="sustained memory bandwidth, bytes/s (H100 SXM: 3.35e12 peak, ~60%%)",
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "paper_flops.json"))
    args = ap.parse_args(argv)
    d, m = diffusion_counts(), decoder_counts()
    rows = stages(d, m, args.tflops, args.utilisation, args.decoder_utilisation, args.bandwidth)
    print("per call (batch 1, 512 px):")
    for k, v in d.items():
        print(f"  {k:16} {v / 1e12:10.4f} TFLOP" if "params" not in k else f"  {k:16} {v / 1e6:10.1f} M")
    for k, v in m.items():
        print(f"  {k:22} {v / 1e9:10.3f} G")
    print(f"\n{'stage':36} {'PFLOP':>10} {'GPU h':>8}")
    for k, r in rows.items():
        print(f"{k:36} {r['flops'] / 1e15:10.1f} {r['gpu_hours']:8.2f}")
    from neuraldiffuser.utils.io import atomic_write_json

    atomic_write_json(
        args.out,
        {
            "assumption": {
                "peak_tflops": args.tflops,
                "utilisation_diffusion": args.utilisation,
                "utilisation_decoders": args.decoder_utilisation,
                "gpu": "H100 SXM, dense fp16/bf16",
                "bandwidth_bytes_per_s": args.bandwidth,
                "decoder_bytes_per_param_step": BYTES_PER_PARAM_STEP,
            },
            "per_call": d,
            "decoders": m,
            "stages": rows,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
