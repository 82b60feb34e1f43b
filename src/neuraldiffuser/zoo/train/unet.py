"""Part (c): the text-conditioned latent UNet (diffusers ``UNet2DConditionModel``), trained like SD.

The VAE and text encoder are frozen and loaded from the output folder through the same
``Components`` loader every stage uses, so the UNet learns on exactly the (saved, possibly fp16)
weights that ship. Per step: a posterior sample of each image's latent × scaling_factor, SD's
scaled-linear forward noising at a uniform timestep, ε-prediction MSE, with the text context
(last hidden state) of a random caption, replaced by the context of "" with probability
``cfg_dropout`` so classifier-free guidance works. The saved weights are the EMA weights.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import torch

from ...utils.io import atomic_save
from ..build import SD_SCHEDULER
from .common import Replicas, RunState, make_optimizer, replica_bar, run, save_folder, seeded_generator
from .data import ImageCaptionData
from .settings import UNetSettings

REPLICA_TIMEOUT_S = 600


def build_unet(s: UNetSettings, latent_side: int, latent_channels: int, context_dim: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=latent_side,
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=tuple(s.block_out_channels),
        down_block_types=tuple(s.down_block_types),
        up_block_types=tuple(s.up_block_types),
        layers_per_block=s.layers_per_block,
        cross_attention_dim=context_dim,
        attention_head_dim=s.attention_heads,
        norm_num_groups=s.norm_num_groups,
    )


@torch.no_grad()
def encode_posteriors(
    vae, data: ImageCaptionData, cache: Path, replicas: Replicas = Replicas(), batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image's latent (unscaled), cached atomically in ``cache``.

    Replicas each encode a contiguous share of the images and exchange them (all_gather).
    """
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if saved["mean"].shape[0] == len(data):
            return saved["mean"], saved["std"]
    n = len(data)
    per = -(-n // replicas.world)
    lo, hi = replicas.rank * per, min(n, (replicas.rank + 1) * per)
    means, stds = [], []
    with replica_bar(replicas, "encode latents", hi - lo) as bar:
        for start in range(lo, hi, batch):
            idx = torch.arange(start, min(hi, start + batch))
            dist = vae.encode(data.pixels(idx) * 2 - 1).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
            bar.advance(len(idx))
    mean, std = torch.cat(means), torch.cat(stds)
    if replicas.world > 1:
        mean, std = _gather(mean, per, n), _gather(std, per, n)
    if replicas.main:
        atomic_save(cache, lambda tmp: torch.save({"mean": mean, "std": std}, tmp))
    return mean, std


def _gather(part: torch.Tensor, per: int, n: int) -> torch.Tensor:
    import torch.distributed as dist

    padded = torch.zeros((per, *part.shape[1:]), dtype=part.dtype)
    padded[: len(part)] = part
    chunks = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
    dist.all_gather(chunks, padded)
    return torch.cat(chunks)[:n]


def require_unet_folder(folder: str | Path) -> None:
    """``unet.init_from`` must be a saved UNet folder (checked before any work starts)."""
    from ...errors import ConfigError

    if not (Path(folder) / "config.json").is_file():
        raise ConfigError(
            "unet.init_from is not a saved UNet folder (no config.json)",
            where=str(folder),
            fix="point it at a trained stack's unet/ folder",
        )


def load_initial_weights(unet, folder: Path) -> None:
    """Copy a saved UNet's weights into ``unet`` (float32), refusing a folder of another architecture."""
    from diffusers import UNet2DConditionModel

    from ...errors import ConfigError

    require_unet_folder(folder)
    saved = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32)
    keys = (
        "block_out_channels",
        "down_block_types",
        "up_block_types",
        "layers_per_block",
        "cross_attention_dim",
        "attention_head_dim",
        "in_channels",
        "sample_size",
    )
    differ = [k for k in keys if tuple(_as_tuple(saved.config[k])) != tuple(_as_tuple(unet.config[k]))]
    if differ:
        raise ConfigError(
            f"unet.init_from holds a UNet whose {', '.join(differ)} differ from the unet settings",
            where=str(folder / "config.json"),
            fix="use the settings the saved UNet was trained with (its stack's train_settings.yaml)",
        )
    unet.load_state_dict(saved.state_dict())


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def diffusion_loss(
    unet,
    noise_scheduler,
    z0: torch.Tensor,
    context: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """ε-prediction MSE (SD's objective) at timesteps ``t``, optionally Min-SNR-γ weighted.

    Min-SNR-γ (Hang et al. 2023) weights timestep t by min(SNR_t, γ)/SNR_t: the many nearly noise-free
    steps, whose ε targets are hard and useless, stop dominating, which speeds up convergence.
    """
    noisy = noise_scheduler.add_noise(z0, noise, t)
    err = (unet(noisy, t, encoder_hidden_states=context).sample - noise).pow(2).mean(dim=(1, 2, 3))
    if snr_gamma is None:
        return err.mean()
    alpha_bar = noise_scheduler.alphas_cumprod[t]
    snr = alpha_bar / (1 - alpha_bar)
    return (err * snr.clamp(max=snr_gamma) / snr).mean()


def train_unet(
    data: ImageCaptionData,
    s: UNetSettings,
    seed: int,
    stack: Path,
    out: Path,
    checkpoint_dir: Path,
    every: int,
    save_dtype: torch.dtype,
    processes: int = 1,
) -> dict:
    """Train on the VAE and text encoder already saved in ``stack``; save ``out`` (EMA weights).

    ``processes`` > 1 trains that many data-parallel replicas (forked, gloo), each on its slice of the batch.
    """
    from ...config.sections.zoo import ZooConfig
    from ...errors import ConfigError
    from ..loader import Components

    if s.batch_size % processes:
        raise ConfigError(f"unet.batch_size={s.batch_size} is not divisible by {processes} processes")
    comp = Components(ZooConfig(path=str(stack)))
    _ = (comp.vae, comp.text_encoder, comp.tokenizer)  # load before forking: the replicas share them
    args = (data, s, seed, comp, checkpoint_dir, out, every, save_dtype)
    if processes == 1:
        return _train(Replicas(), *args)
    import torch.multiprocessing as mp

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    rendezvous = (
        checkpoint_dir / "rendezvous"
    ).resolve()  # file:// needs an absolute path: a relative one hangs
    rendezvous.unlink(missing_ok=True)
    mp.start_processes(_replica, args=(processes, rendezvous, args), nprocs=processes, start_method="fork")
    rendezvous.unlink(missing_ok=True)
    state = torch.load(
        checkpoint_dir / "unet.pt", map_location="cpu", weights_only=True
    )  # written by replica 0
    return {
        "steps": state["step"],
        "seconds": round(state["elapsed"], 1),
        "history": state["history"],
        "processes": processes,
    }


def _replica(rank: int, world: int, rendezvous: Path, args: tuple) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    # a bounded wait: a replica that never arrives (or a collective that never completes)
    # raises instead of hanging
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=REPLICA_TIMEOUT_S),
    )
    try:
        _train(Replicas(rank, world), *args)
    finally:
        dist.destroy_process_group()


def _train(
    replicas: Replicas, data, s: UNetSettings, seed, comp, checkpoint_dir: Path, out: Path, every, save_dtype
) -> dict:
    from diffusers import DDIMScheduler
    from diffusers.training_utils import EMAModel

    mean, std = encode_posteriors(comp.vae, data, checkpoint_dir / "latents.pt", replicas)
    checkpoint = checkpoint_dir / "unet.pt"
    text_encoder, scale = comp.text_encoder, comp.latent_scale
    max_length = comp.tokenizer.model_max_length
    uncond_ids = comp.tokenizer(
        [""], padding="max_length", max_length=max_length, return_tensors="pt"
    ).input_ids
    noise_scheduler = DDIMScheduler(**SD_SCHEDULER)

    torch.manual_seed(seed)
    unet = build_unet(s, mean.shape[-1], mean.shape[1], text_encoder.config.hidden_size)
    if s.init_from:
        load_initial_weights(unet, Path(s.init_from))
    optimizer, scheduler = make_optimizer(unet, s)
    ema = EMAModel(unet.parameters(), decay=s.ema_decay)
    state = RunState({"unet": unet}, optimizer, scheduler, seeded_generator(seed, "unet"), ema=ema)
    state.try_resume(checkpoint)
    gen = state.generator
    mine = replicas.part(s.batch_size)

    def step(_: int):
        # every replica draws the whole batch's randomness (same generator state), then keeps its slice
        idx = data.sample(gen, s.batch_size)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scale
        ids = data.random_tokens(idx, gen)
        drop = torch.rand(len(idx), generator=gen) < s.cfg_dropout
        ids = torch.where(drop[:, None], uncond_ids, ids)
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
        with torch.no_grad():
            context = text_encoder(ids[mine]).last_hidden_state
        return diffusion_loss(unet, noise_scheduler, z0[mine], context, noise[mine], t[mine], s.snr_gamma), {}

    run(state, step, s, checkpoint, every, "UNet", replicas)
    if replicas.main:
        ema.copy_to(unet.parameters())
        save_folder(unet, out, save_dtype)
    return {"steps": state.step, "seconds": round(state.elapsed, 1), "history": state.history}
