"""Part (a): the KL autoencoder (diffusers ``AutoencoderKL``, 4 latent channels).

Loss per step: L1 + ssim_weight·(1 − SSIM) on the reconstruction of a posterior *sample*, plus
kl_weight·KL per latent element. SSIM is in the loss because it is the quality we are held to and
because L1 alone blurs the high-frequency stripes and checkers of the stimulus domain. After training,
``scaling_factor`` is set to 1/std of the latents of the training pool (SD's 0.18215 plays that role),
so the UNet sees latents of about unit variance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .common import RunState, make_optimizer, run, save_folder, seeded_generator, ssim
from .data import ImageCaptionData
from .settings import AutoencoderSettings, DecoderSettings


def build_autoencoder(s: AutoencoderSettings, resolution: int):
    from diffusers import AutoencoderKL

    levels = len(s.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=s.latent_channels,
        block_out_channels=tuple(s.block_out_channels),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=s.layers_per_block,
        norm_num_groups=s.norm_num_groups,
        sample_size=resolution,
        mid_block_add_attention=s.mid_block_attention,
    )


def autoencoder_loss(
    vae, x: torch.Tensor, s: AutoencoderSettings, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """``x`` in [−1, 1]. Returns the total loss and its parts."""
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=gen)
    rec = vae.decode(z).sample
    l1 = (rec - x).abs().mean()
    s_val = ssim(rec, x, data_range=2.0).mean()
    kl = posterior.kl().mean() / z[0].numel()
    loss = l1 + s.ssim_weight * (1 - s_val) + s.kl_weight * kl
    return loss, {"l1": l1.item(), "ssim": s_val.item(), "kl": kl.item()}


def random_crop(x: torch.Tensor, size: int | None, gen: torch.Generator) -> torch.Tensor:
    """One random ``size``×``size`` window (the same for the whole batch), or ``x`` itself."""
    if size is None or size >= x.shape[-1]:
        return x
    top, left = torch.randint(0, x.shape[-1] - size + 1, (2,), generator=gen).tolist()
    return x[..., top : top + size, left : left + size]


@torch.no_grad()
def latent_std(vae, data: ImageCaptionData, gen: torch.Generator, n: int = 2048, batch: int = 128) -> float:
    """Std of posterior samples over (up to) ``n`` training images: the scale that makes latents ~unit std."""
    idx = torch.randperm(len(data), generator=gen)[:n]
    zs = []
    for start in range(0, len(idx), batch):
        x = data.pixels(idx[start : start + batch]) * 2 - 1
        zs.append(vae.encode(x).latent_dist.sample(generator=gen))
    return float(torch.cat(zs).std())


def train_autoencoder(
    data: ImageCaptionData,
    s: AutoencoderSettings,
    seed: int,
    out: Path,
    checkpoint: Path,
    every: int,
    save_dtype: torch.dtype,
) -> dict:
    """Train, set ``scaling_factor``, save ``out`` (a diffusers folder). Resumes from ``checkpoint``."""
    torch.manual_seed(seed)
    vae = build_autoencoder(s, data.resolution)
    optimizer, scheduler = make_optimizer(vae, s)
    state = RunState({"vae": vae}, optimizer, scheduler, seeded_generator(seed, "autoencoder"))
    state.try_resume(checkpoint)
    gen = state.generator

    def step(_: int):
        x = random_crop(data.pixels(data.sample(gen, s.batch_size)) * 2 - 1, s.crop, gen)
        return autoencoder_loss(vae, x, s, gen)

    run(state, step, s, checkpoint, every, "autoencoder")
    std = latent_std(vae, data, torch.Generator().manual_seed(seed))
    vae.register_to_config(scaling_factor=round(1.0 / std, 5))
    save_folder(vae, out, save_dtype)
    return {
        "steps": state.step,
        "seconds": round(state.elapsed, 1),
        "latent_std": std,
        "scaling_factor": vae.config.scaling_factor,
        "history": state.history,
    }


def decoder_loss(
    vae, x: torch.Tensor, ssim_weight: float, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction loss with the encoder frozen (no KL: the latent space no longer moves)."""
    with torch.no_grad():
        z = vae.encode(x).latent_dist.sample(generator=gen)
    rec = vae.decode(z).sample
    l1 = (rec - x).abs().mean()
    s_val = ssim(rec, x, data_range=2.0).mean()
    return l1 + ssim_weight * (1 - s_val), {"l1": l1.item(), "ssim": s_val.item()}


def finetune_decoder(
    data: ImageCaptionData,
    s: DecoderSettings,
    seed: int,
    folder: Path,
    checkpoint: Path,
    every: int,
    save_dtype: torch.dtype,
) -> dict:
    """Fine-tune the decoder of the VAE saved in ``folder`` on whole images, encoder frozen; save it back.

    The latent space is fixed by the frozen encoder, so a UNet trained on it stays valid (like SD's
    fine-tuned "ft-MSE" decoders); whole images remove the crop-border mismatch of the first phase.
    """
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder).float()
    vae.encoder.requires_grad_(False)
    if vae.quant_conv is not None:
        vae.quant_conv.requires_grad_(False)
    optimizer, scheduler = make_optimizer(vae, s)
    state = RunState({"vae": vae}, optimizer, scheduler, seeded_generator(seed, "decoder"))
    state.try_resume(checkpoint)
    gen = state.generator

    def step(_: int):
        vae.encoder.eval()
        x = data.pixels(data.sample(gen, s.batch_size)) * 2 - 1
        return decoder_loss(vae, x, s.ssim_weight, gen)

    run(state, step, s, checkpoint, every, "decoder")
    save_folder(vae, folder, save_dtype)
    return {"steps": state.step, "seconds": round(state.elapsed, 1), "history": state.history}
