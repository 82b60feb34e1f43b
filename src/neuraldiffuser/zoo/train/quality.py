"""Quality of a stack on held-out images: the numbers issue 4 asks of the shipped zoo.

- autoencoder: SSIM of VAE reconstructions (posterior mode) to the originals, on up to
  ``n_autoencoder`` images (it is cheap, and 100 images leave a standard error of ~0.007);
- mini CLIP: image→caption retrieval among the n held-out pairs (each image's first caption);
- text-to-image: DDIM from pure noise with CFG on each first caption; does the generated image
  retrieve its own caption among the n (scored by the mini CLIP)?
- img2img: the NeuralDiffuser sampler from the true latent z (posterior mode × scaling factor) with
  the true c (text-encoder states averaged over the image's captions, as ``extract`` computes them),
  unguided (κ = 0) and guided by the true g features; SSIM to the originals.

SSIM everywhere is ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255)``
on the uint8 RGB images at the stack's resolution (skimage defaults: 7×7 uniform window).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ...config.sections.sampler import SamplerConfig
from ...config.sections.zoo import ZooConfig
from ...utils.io import atomic_write_json
from ...utils.progress import track
from .data import ImageCaptionData

SSIM_SETTINGS = (
    "skimage structural_similarity(channel_axis=-1, data_range=255), "
    "7x7 uniform window, uint8 RGB at the stack resolution"
)


def to_uint8(images01: torch.Tensor) -> np.ndarray:
    return (images01.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def ssim_rgb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    return np.array(
        [structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(a, b, strict=True)]
    )


def retrieval(image_emb: torch.Tensor, text_emb: torch.Tensor) -> dict[str, float]:
    """Image i should retrieve text i: top-1/top-5 accuracy of image→text and text→image ranking."""
    sim = image_emb @ text_emb.t()
    target = torch.arange(len(sim))

    def topk(s: torch.Tensor, k: int) -> float:
        return float((s.topk(min(k, s.shape[1]), dim=1).indices == target[:, None]).any(dim=1).float().mean())

    return {
        "image_to_text_top1": topk(sim, 1),
        "image_to_text_top5": topk(sim, 5),
        "text_to_image_top1": topk(sim.t(), 1),
        "chance_top1": 1 / len(sim),
    }


@torch.no_grad()
def reconstruct(comp, images01: torch.Tensor, batch: int = 50) -> torch.Tensor:
    out = []
    for i in range(0, len(images01), batch):
        x = images01[i : i + batch] * 2 - 1
        out.append(comp.vae.decode(comp.vae.encode(x).latent_dist.mode()).sample / 2 + 0.5)
    return torch.cat(out).clamp(0, 1)


@torch.no_grad()
def text_to_image(
    comp, captions: list[str], cfg_scale: float, steps: int, seed: int, batch: int = 50
) -> torch.Tensor:
    """Plain DDIM (η = 0) from N(0, I) latents with classifier-free guidance: SD's text-to-image loop."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(comp.scheduler.config)
    sched.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(captions), batch):
        c = comp.encode_text(captions[i : i + batch])
        ctx = torch.cat([comp.unconditional(len(c)), c])
        x = torch.randn((len(c), *comp.latent_shape), generator=gen)
        for t in sched.timesteps:
            eps_u, eps_c = comp.unet(torch.cat([x, x]), t, encoder_hidden_states=ctx).sample.chunk(2)
            x = sched.step(eps_u + cfg_scale * (eps_c - eps_u), t, x).prev_sample
        out.append(comp.vae.decode(x / comp.latent_scale).sample / 2 + 0.5)
    return torch.cat(out).clamp(0, 1)


@torch.no_grad()
def true_targets(
    comp, data: ImageCaptionData, images01: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z (mode × scale), c (mean over captions) and g of each image, as ``extract`` defines them."""
    z = comp.vae.encode(images01 * 2 - 1).latent_dist.mode() * comp.latent_scale
    c = torch.stack([comp.encode_text(caps).mean(0) for caps in data.captions])
    return z, c, comp.guidance(images01)


def img2img(
    comp,
    config: SamplerConfig,
    z: torch.Tensor,
    c: torch.Tensor,
    g: torch.Tensor,
    seed: int,
    label: str,
    make_sampler,
) -> torch.Tensor:
    """The NeuralDiffuser sampler, one image at a time (R repeats batched); returns all repeats (N·R, 3, H,
    W). ``make_sampler(components, config)`` builds it (``sampling.sampler.NeuralDiffuserSampler``, passed in
    by the caller: the zoo package sits below ``sampling`` and does not import it)."""
    sampler = make_sampler(comp, config)
    return torch.cat([sampler(c[i], z[i], g[i], seed=seed + i) for i in track(range(len(z)), label)])


def measure_quality(
    zoo: ZooConfig,
    images: str | Path,
    out: str | Path | None = None,
    n: int = 100,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    t2i_cfg_scale: float = 7.5,
    t2i_steps: int = 50,
    n_autoencoder: int = 1000,
    *,
    make_sampler,
) -> dict:
    """Measure everything listed in the module docstring on the first ``n`` images of ``images``;
    ``make_sampler`` is ``neuraldiffuser.sampling.sampler.NeuralDiffuserSampler`` (or any ``(components,
    SamplerConfig) → sampler``)."""
    from transformers import CLIPModel

    from ..loader import Components, load_pretrained
    from .clip import embed_images, embed_texts

    comp = Components(zoo)
    data = ImageCaptionData.from_dataset(images, limit=max(n, n_autoencoder))
    ae_x, ae_originals = data.pixels(torch.arange(len(data))), data.images
    data = ImageCaptionData(data.images[:n], data.captions[:n], data.source)
    x, originals = ae_x[:n], data.images
    clip = load_pretrained(CLIPModel, comp.path, "clip", "mini CLIP").float().eval()  # stored in fp16
    first = [caps[0] for caps in data.captions]
    ids = comp.tokenizer(
        first,
        padding="max_length",
        max_length=comp.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    result: dict = {
        "zoo": zoo.path,
        "held_out": str(images),
        "n": len(data),
        "ssim_settings": SSIM_SETTINGS,
        "seed": seed,
    }
    timings = {}

    t0 = time.perf_counter()
    ae = ssim_rgb(ae_originals, to_uint8(reconstruct(comp, ae_x)))
    result["autoencoder"] = {
        "ssim": float(ae.mean()),
        "n": len(ae),
        "sem": float(ae.std() / np.sqrt(len(ae))),
        f"ssim_first_{n}": float(ae[:n].mean()),
    }
    with torch.no_grad():
        text_emb = embed_texts(clip, ids)
        result["clip"] = retrieval(embed_images(clip, x), text_emb)
    timings["autoencoder_and_clip"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    gen_images = text_to_image(comp, first, t2i_cfg_scale, t2i_steps, seed)
    with torch.no_grad():
        result["text_to_image"] = {
            "cfg_scale": t2i_cfg_scale,
            "steps": t2i_steps,
            **retrieval(embed_images(clip, gen_images), text_emb),
        }
    timings["text_to_image"] = time.perf_counter() - t0

    base = (sampler or SamplerConfig()).model_copy(update={"repeats": 1})
    z, c, g = true_targets(comp, data, x)
    runs = {"unguided": base.model_copy(update={"kappa": 0.0}), "guided": base}
    img2img_result = {}
    for name, cfg in runs.items():
        t0 = time.perf_counter()
        recon = img2img(comp, cfg, z, c, g, seed, f"img2img {name}", make_sampler)
        timings[f"img2img_{name}"] = time.perf_counter() - t0
        img2img_result[name] = {
            "ssim": float(ssim_rgb(originals, to_uint8(recon)).mean()),
            "kappa": cfg.kappa,
            "eta": cfg.eta,
        }
    img2img_result["sampler"] = base.model_dump(
        mode="json",
        include={"steps", "strength", "cfg_scale", "sag_scale", "eta", "x0_formula", "noise_timestep"},
    )
    img2img_result["guided_improves"] = img2img_result["guided"]["ssim"] > img2img_result["unguided"]["ssim"]
    result["img2img"] = img2img_result
    result["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    result["summary"] = summarize(result)
    if out is not None:
        atomic_write_json(out, result)
    return result


TARGETS = {
    "autoencoder_ssim": 0.90,
    "clip_image_to_text_top1": 0.80,
    "text_to_image_top5": 0.50,
    "img2img_unguided_ssim": 0.60,
}


def summarize(result: dict) -> dict:
    """The headline numbers next to the targets of issue 4."""
    got = {
        "autoencoder_ssim": result["autoencoder"]["ssim"],
        "clip_image_to_text_top1": result["clip"]["image_to_text_top1"],
        "text_to_image_top5": result["text_to_image"]["image_to_text_top5"],
        "img2img_unguided_ssim": result["img2img"]["unguided"]["ssim"],
        "img2img_guided_ssim": result["img2img"]["guided"]["ssim"],
    }
    summary = {k: round(v, 4) for k, v in got.items()}
    summary["targets"] = TARGETS
    summary["met"] = {k: got[k] >= v for k, v in TARGETS.items()} | {
        "guided_improves_ssim": result["img2img"]["guided_improves"]
    }
    return summary
