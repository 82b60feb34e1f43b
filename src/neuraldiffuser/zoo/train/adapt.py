"""``adapt_zoo``: fine-tune a whole trained stack on a new image domain within a time budget (issue 17).

`zoo train --images DATASET --init-from builtin:insilico-64 --minutes N` copies the stack and fine-tunes every
part on the dataset's *training* stimuli (images of any subject's test split are left out, so nothing is
learned from test images):

1. the autoencoder, encoder and decoder (L1 + (1 − SSIM) + KL, whole images); its latent scaling factor is
   kept, so the UNet's input scale does not move under it;
2. the CLIP model, vision and text towers, contrastively; images that share a caption are all positives of
   each other (labels such as "an image of the digit 3" repeat within a batch); with a single caption for
   every image CLIP is kept as it is (there is nothing to contrast), which the log says; the text
   encoder is its text tower;
3. the UNet on the new latents and text contexts (ε-MSE, Min-SNR weighted, classifier-free caption dropout).

The budget is split between the parts by ``shares`` and each part runs until its share of wall time is spent,
with a learning rate that warms up and decays (cosine) over that time. Stimuli reach the stack's square canvas
by ``data.fit.to_stack`` (pad to square with edge pixels, Lanczos resize); `evaluate --native` and the
reconstruction folders' ``native/`` images bring outputs back to the stimulus' own size and mode. A quality
line before → after closes the run (autoencoder SSIM, CLIP caption top-1, UNet loss on a fixed batch, all on
the training stimuli).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DataError
from ...utils.io import atomic_write_json
from ...utils.progress import progress_bar
from .data import ImageCaptionData

SHARES = {"autoencoder": 0.25, "clip": 0.15, "unet": 0.60}
LR = {"autoencoder": 3e-4, "clip": 1e-4, "unet": 2e-4}
BATCH = {"autoencoder": 16, "clip": 64, "unet": 32}
STACK_FOLDERS = ("vae", "unet", "scheduler", "tokenizer", "text_encoder", "clip", "guidance_encoder")


def training_stimuli(path: str | Path, side: int) -> tuple[ImageCaptionData, dict]:
    """The dataset's images that no subject saw in a test trial, at the stack's side, with their captions."""
    from ...data import open_dataset
    from ...data.fit import to_stack

    ds = open_dataset(path)
    test = set()
    for s in ds.subjects.values():
        test |= set(np.unique(s.trials.image[s.trials.split == "test"]).tolist())
    keep = np.array([i for i in range(len(ds.images)) if i not in test], dtype=np.int64)
    if len(keep) < 2:
        raise DataError(
            f"{len(keep)} training images to adapt the stack to",
            where=str(path),
            fix="the dataset needs training stimuli",
        )
    images = to_stack(ds.images.get(keep), side)
    info = {
        "dataset": str(path),
        "n_images": int(len(keep)),
        "test_images_left_out": len(test),
        "stimulus_size": list(ds.meta.get("stimulus_size") or ds.images.size),
        "stimulus_mode": ds.meta.get("stimulus_mode", "RGB"),
        "policy": f"pad to square (edge pixels), Lanczos to {side} px (data.fit.to_stack)",
    }
    return ImageCaptionData(images, [ds.captions_of(int(i)) for i in keep], source=str(path)), info


def timed_loop(name: str, params: list, step_fn, seconds: float, lr: float, gen_warmup: int = 10) -> dict:
    """AdamW until ``seconds`` of wall time are spent; lr warms up over the first steps, then decays (cosine)
    with the fraction of time used. Returns steps, seconds and the mean loss of the first and last
    tenth of the steps."""
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    losses, step, t0 = [], 0, time.perf_counter()
    total = max(1, int(round(seconds)))
    with progress_bar(f"adapt {name}", total) as bar:
        done = 0
        while (elapsed := time.perf_counter() - t0) < seconds:
            factor = min(1.0, (step + 1) / gen_warmup) * (
                0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / seconds)))
            )
            for g in opt.param_groups:
                g["lr"] = lr * factor
            loss = step_fn()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
            now = min(total, int(time.perf_counter() - t0))
            bar.advance(now - done, info=f"step {step} loss {np.mean(losses[-10:]):.4g}")
            done = now
    k = max(1, len(losses) // 10)
    return {
        "steps": step,
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_first": float(np.mean(losses[:k])),
        "loss_last": float(np.mean(losses[-k:])),
    }


def to_side(x: torch.Tensor, side: int) -> torch.Tensor:
    """Images (B, 3, H, W) at the CLIP tower's input side (bilinear, antialiased), as the
    guidance encoder resizes."""
    return (
        x
        if x.shape[-1] == side
        else F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    )


def multi_positive_loss(clip, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE whose targets spread over every pair with the same caption."""
    logits = clip(input_ids=input_ids, pixel_values=pixel_values).logits_per_image
    same = (input_ids[:, None, :] == input_ids[None, :, :]).all(-1).float()
    target = same / same.sum(1, keepdim=True)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def measure(
    vae, clip, unet, text_encoder, data: ImageCaptionData, scale: float, seed: int = 0, n: int = 64
) -> dict:
    """Autoencoder SSIM (posterior mean), CLIP caption top-1 among the distinct captions, UNet loss
    on a fixed batch."""
    from diffusers import DDIMScheduler

    from ..build import SD_SCHEDULER
    from .clip import normalize
    from .common import ssim
    from .unet import diffusion_loss

    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=gen)[:n]
    x = data.pixels(idx) * 2 - 1
    z = vae.encode(x).latent_dist.mean
    rec = vae.decode(z).sample.clamp(-1, 1)
    out = {"autoencoder_ssim": float(ssim(rec, x, data_range=2.0).mean())}
    first = data.tokens[torch.from_numpy(data.offsets[idx.numpy()])]
    uniq, label = torch.unique(first, dim=0, return_inverse=True)
    if len(uniq) > 1:
        pixels = to_side(data.pixels(idx), int(clip.config.vision_config.image_size))
        img = F.normalize(
            clip.visual_projection(clip.vision_model(pixel_values=normalize(pixels)).pooler_output), dim=-1
        )
        txt = F.normalize(clip.text_projection(clip.text_model(input_ids=uniq).pooler_output), dim=-1)
        out["clip_caption_top1"] = float(((img @ txt.T).argmax(1) == label).float().mean())
        out["clip_chance"] = round(1 / len(uniq), 4)
    sched = DDIMScheduler(**SD_SCHEDULER)
    noise = torch.randn(z.shape, generator=gen)
    t = torch.randint(0, 1000, (len(z),), generator=gen)
    out["unet_loss"] = float(
        diffusion_loss(unet, sched, z * scale, text_encoder(first).last_hidden_state, noise, t, 5.0)
    )
    return out


def quality_line(before: dict, after: dict) -> str:
    parts = [f"autoencoder SSIM {before['autoencoder_ssim']:.3f} → {after['autoencoder_ssim']:.3f}"]
    if "clip_caption_top1" in after:
        parts.append(
            f"CLIP caption top-1 {before['clip_caption_top1']:.2f} → "
            f"{after['clip_caption_top1']:.2f} (chance {after['clip_chance']:.2f})"
        )
    parts.append(f"UNet loss {before['unet_loss']:.4f} → {after['unet_loss']:.4f}")
    return "quality (training stimuli): " + ", ".join(parts)


def adapt_zoo(
    images: str | Path,
    out: str | Path,
    init_from: str = "builtin:insilico-64",
    minutes: float = 5.0,
    seed: int = 0,
    shares: dict[str, float] | None = None,
) -> dict:
    """Copy the stack ``init_from`` to ``out`` and fine-tune every part on ``images`` within
    ``minutes``; returns the log."""
    from ...config.sections.zoo import ZooConfig
    from ..loader import Components, resolve_path
    from .clip import normalize, text_encoder_of

    src, out = Path(resolve_path(init_from)), Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(
            "output folder is not empty",
            where=str(out),
            fix="choose a new --out (adaptation starts from the stack each time)",
        )
    if not (src / "unet" / "config.json").is_file():
        raise DataError(
            "not a stack folder (no unet/config.json)",
            where=str(src),
            fix="give builtin:insilico-64 or a folder written by `zoo train`",
        )
    torch.manual_seed(seed)
    comp = Components(ZooConfig(path=str(src)))
    vae, unet, text_encoder = (
        comp.vae.float().requires_grad_(True),
        comp.unet.float().requires_grad_(True),
        comp.text_encoder.float(),
    )
    from transformers import CLIPModel, CLIPTokenizer

    clip = CLIPModel.from_pretrained(src / "clip", torch_dtype=torch.float32)
    data, info = training_stimuli(images, comp.resolution)
    clip_side = int(clip.config.vision_config.image_size)
    data.tokenize(
        CLIPTokenizer.from_pretrained(src / "tokenizer"), text_encoder.config.max_position_embeddings
    )
    scale = float(vae.config.scaling_factor)
    before = measure(vae.eval(), clip.eval(), unet.eval(), text_encoder.eval(), data, scale, seed)
    shares = shares or SHARES
    budget = {k: 60.0 * minutes * v / sum(shares.values()) for k, v in shares.items()}
    gen = torch.Generator().manual_seed(seed)
    log = {"init_from": init_from, "minutes": minutes, "seed": seed, "data": info, "parts": {}}

    def sample(part: str) -> torch.Tensor:
        return data.sample(gen, min(BATCH[part], len(data)))

    vae.train()
    log["parts"]["autoencoder"] = timed_loop(
        "autoencoder",
        list(vae.parameters()),
        lambda: _vae_loss(vae, data.pixels(sample("autoencoder")) * 2 - 1, gen),
        budget["autoencoder"],
        LR["autoencoder"],
    )
    vae.eval().requires_grad_(False)
    distinct = len({c for caps in data.captions for c in caps})
    if distinct > 1:
        clip.train()

        def clip_step():
            idx = sample("clip")
            return multi_positive_loss(
                clip, normalize(to_side(data.pixels(idx), clip_side)), data.random_tokens(idx, gen)
            )

        log["parts"]["clip"] = timed_loop(
            "CLIP", list(clip.parameters()), clip_step, budget["clip"], LR["clip"]
        )
        clip.eval()
        text_encoder = text_encoder_of(clip)
    else:
        log["parts"]["clip"] = {
            "steps": 0,
            "skipped": "every image has the same caption: nothing to contrast; "
            "CLIP and the text encoder kept",
        }
        budget["unet"] += budget["clip"]
    text_encoder.eval().requires_grad_(False)
    uncond = data.tokens.new_tensor(
        CLIPTokenizer.from_pretrained(src / "tokenizer")(
            [""], padding="max_length", max_length=data.tokens.shape[1]
        ).input_ids
    )
    log["parts"]["unet"] = adapt_unet(unet, vae, text_encoder, data, uncond, scale, gen, budget["unet"])
    log["quality_before"], log["quality_after"] = (
        before,
        measure(vae, clip, unet, text_encoder, data, scale, seed),
    )
    log["quality_line"] = quality_line(before, log["quality_after"])
    _save(src, out, vae, clip, text_encoder, unet, log)
    return log


def adapt_unet(
    unet,
    vae,
    text_encoder,
    data: ImageCaptionData,
    uncond: torch.Tensor,
    scale: float,
    gen: torch.Generator,
    seconds: float,
) -> dict:
    """The UNet on the adapted latents and text contexts: ε-MSE (Min-SNR γ 5), captions dropped
    10 % of the time."""
    from diffusers import DDIMScheduler

    from ..build import SD_SCHEDULER
    from .unet import diffusion_loss

    sched = DDIMScheduler(**SD_SCHEDULER)
    with torch.no_grad():
        post = vae.encode(data.pixels(torch.arange(len(data))) * 2 - 1).latent_dist
        mean, std = post.mean, post.std

    def step():
        idx = data.sample(gen, min(BATCH["unet"], len(data)))
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scale
        ids = data.random_tokens(idx, gen)
        ids = torch.where((torch.rand(len(idx), generator=gen) < 0.1)[:, None], uncond, ids)
        with torch.no_grad():
            ctx = text_encoder(ids).last_hidden_state
        t = torch.randint(0, 1000, (len(idx),), generator=gen)
        return diffusion_loss(unet, sched, z0, ctx, torch.randn(z0.shape, generator=gen), t, 5.0)

    unet.train()
    result = timed_loop("UNet", list(unet.parameters()), step, seconds, LR["unet"])
    unet.eval()
    return result


def _vae_loss(vae, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from .autoencoder import autoencoder_loss
    from .settings import AutoencoderSettings

    return autoencoder_loss(vae, x, AutoencoderSettings(), gen)[0]


def _save(src: Path, out: Path, vae, clip, text_encoder, unet, log: dict) -> None:
    """The adapted stack in the same layout as ``src`` (fp16 weights as shipped; static parts copied)."""
    from .common import save_folder

    out.mkdir(parents=True, exist_ok=True)
    for name in ("scheduler", "tokenizer"):
        shutil.copytree(src / name, out / name, dirs_exist_ok=True)
    if (src / "guidance_encoder").is_dir():
        shutil.copytree(src / "guidance_encoder", out / "guidance_encoder", dirs_exist_ok=True)
    for module, name in ((vae, "vae"), (clip, "clip"), (text_encoder, "text_encoder"), (unet, "unet")):
        save_folder(module, out / name, torch.float16)
    atomic_write_json(out / "train_log.json", {"adapted": log})
