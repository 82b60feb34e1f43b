"""A straightforward loop with the released code's structure: slow on purpose, for comparison only.

It follows the structure of the released reconstruction loop (method notes §5.2–§5.6; ND:src/recon.py), not
our sampler's code: one repeat at a time; a CFG batch of two plus a SAG call on every step; on each guided
step a *separate* conditional UNet call with autograd through models whose weights still require gradients
(the released script never freezes them); the loss computed layer by layer with weights from NumPy
norms; every intermediate latent decoded. The benchmark times it against
:class:`~neuraldiffuser.sampling.sampler.NeuralDiffuserSampler`, and the tests use it as an
independent implementation of the same numerics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ..config.sections.sampler import SamplerConfig
from .sag import attention_mask, capture_mid_attention, degrade


@contextmanager
def trainable(*models) -> Iterator[None]:
    """Weights require gradients inside the block, as in the released script."""
    for m in models:
        m.requires_grad_(True)
    try:
        yield
    finally:
        for m in models:
            m.requires_grad_(False)


def mse_clip(encoder, image: torch.Tensor, g: np.ndarray, boosts) -> torch.Tensor:
    """The released cal_loss: clamp((I+1)/2), features, per-layer MSE weighted by normalised
    inverse norms × boosts."""
    feats = encoder(torch.clamp((image + 1.0) / 2.0, 0.0, 1.0))[0]
    norms = np.array([np.linalg.norm(g[k]) for k in range(len(g))])
    weights = (1.0 / norms) / (1.0 / norms).sum() * np.asarray(boosts)
    total = 0
    for k in range(len(g)):
        total = total + F.mse_loss(
            feats[k].reshape(1, -1), torch.tensor(g[k], device=image.device).reshape(1, -1)
        ) * float(weights[k])
    return total


def reference_sample(
    components, config: SamplerConfig, c, z, g=None, seed: int = 42, decode_all: bool = True
) -> torch.Tensor:
    """R reconstructions, one after the other, as the released loop makes them; returns (R,
    3, H, W) in [0, 1]."""
    from diffusers import DDIMScheduler

    unet, vae, dev = components.unet, components.vae, components.device
    sched = DDIMScheduler.from_config(components.scheduler.config)
    sched.set_timesteps(config.steps)
    t_enc = int(config.strength * config.steps)
    timesteps = [int(t) for t in sched.timesteps[-t_enc:]]
    t_noise = int(t_enc / config.steps * 1000) if config.noise_timestep == "released" else timesteps[0]
    gen = torch.Generator(dev if config.noise_device == "model" else "cpu").manual_seed(int(seed))
    cond = c[None].float().to(dev)
    uncond = components.encode_text([""]).float()
    g_np = g.float().cpu().numpy() if g is not None else None
    models = (unet, vae, components.guidance) if config.kappa > 0 else (unet, vae)
    images = []
    with trainable(*models), capture_mid_attention(unet) as store:
        for _ in range(config.repeats):
            noise = torch.randn(z.shape, generator=gen, device=gen.device)[None].to(dev)
            x = sched.add_noise(z[None].float().to(dev), noise, torch.tensor([t_noise]))
            steps_left = int(t_enc * config.eta) if config.kappa > 0 else 0
            latents = []
            for t in timesteps:
                with torch.no_grad():
                    eps = cfg_sag_step(unet, sched, store, x, t, uncond, cond, config)
                if steps_left > 0:
                    steps_left -= 1
                    eps = cond_fn(components, sched, x, t, cond, eps, g_np, config)
                with torch.no_grad():
                    x = sched.step(eps, t, x, eta=0.0).prev_sample
                latents.append(x)
            with torch.no_grad():
                images.append((vae.decode(x / components.latent_scale).sample / 2 + 0.5).clamp(0, 1))
                if decode_all:  # the released loop decodes every intermediate latent too (unused outputs)
                    _ = [vae.decode(lat / components.latent_scale).sample for lat in latents]
            for _ in range(config.burn_draws):
                torch.randn(z.shape, generator=gen, device=gen.device)
    return torch.cat(images)


def cfg_sag_step(unet, sched, store, x, t, uncond, cond, config: SamplerConfig) -> torch.Tensor:
    store.arm()
    eps_u, eps_c = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
    store.disarm()
    eps = eps_u + config.cfg_scale * (eps_c - eps_u)
    if config.sag_scale > 0:
        a = sched.alphas_cumprod[t]
        x0 = (x - (1 - a) ** 0.5 * eps_u) / a**0.5
        mask = attention_mask(store.probs.chunk(2)[0], 1, store.map_size, x.shape[-2:])
        degraded = unet(degrade(x0, mask, eps_u, t, sched), t, encoder_hidden_states=uncond).sample
        eps = eps + config.sag_scale * (eps_u - degraded)
    return eps


def cond_fn(components, sched, x, t, cond, eps, g_np, config: SamplerConfig) -> torch.Tensor:
    """The released cond_fn: re-predict with the conditional context, x̂0, blend, decode,
    loss, ε − √(1−ᾱ)·∇."""
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        eps_c = components.unet(x, t, encoder_hidden_states=cond).sample
        a = sched.alphas_cumprod[t]
        b = 1 - a
        x0 = (x - (b if config.x0_formula == "released" else b**0.5) * eps_c) / a**0.5
        fac = torch.sqrt(b)
        sample = x0 * fac + x * (1 - fac)
        image = components.vae.decode(sample / components.latent_scale).sample
        loss = -mse_clip(components.guidance, image, g_np, config.layer_boosts) * config.kappa
        grads = torch.autograd.grad(loss, x)[0]
    return eps - torch.sqrt(1 - a) * grads
