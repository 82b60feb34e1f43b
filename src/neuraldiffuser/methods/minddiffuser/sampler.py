"""MindDiffuser's two reconstruction stages (method notes §7.2–§7.3).

Stage 1 is img2img from the decoded z and c: z is noised to the DDIM schedule's timestep number
``noise_index`` (37 of 50 → t = 741), then the last ``denoise_steps`` steps of the schedule are run
(35 → 681, 661, …, 1) with classifier-free guidance against "" encoded at the same short token
length. The two numbers are separate on purpose: the reference noises and starts at different levels.

Stage 2 treats the whole of stage 1 as a differentiable function of z (or of c and z): every
iteration re-noises z, runs all the denoising steps, the VAE decoder and the guidance tower with
autograd, compares the features with the decoded g inside its remain-rate mask (the inverse-norm
weighted per-layer MSE shared with NeuralDiffuser's guidance, ``sampling.guidance.FeatureLoss``), and
takes an Adam step with an exponentially decaying learning rate. With gradient checkpointing only the
latent entering each denoising step is kept; the step is recomputed during the backward pass.
The image returned (``returned_image``) is the one generated in the last refinement iteration whose index is a
multiple of ``SAVE_EVERY`` — the reference saves rec_iter_{i}.png every 10 iterations and nothing after the
loop, so its last file (i = 290 of 300) is what it returns — or ('fresh') stage 1 run once more from
the refined variables.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from ...config.sections.minddiffuser import MindDiffuserConfig
from ...errors import DataError
from ...sampling.guidance import FeatureLoss
from .decoders import encode_short

SAVE_EVERY = 10  # the reference writes the iteration's image when iter % 10 == 0


class MindDiffuserSampler:
    """``sampler(c, z, g, seed=...)`` → (R, 3, H, W) images in [0, 1]; ``R = repeats``.

    c is (T, D) at the method's short token length, z a (C, h, w) latent times the VAE scaling factor,
    g (L, tokens, width) decoded features that are zero outside their masks (needed when iterations > 0).
    ``losses`` holds the stage-2 loss of every iteration (rows) and repeat (columns) of the last call.
    """

    def __init__(self, components, config: MindDiffuserConfig | None = None, repeats: int = 1):
        from diffusers import DDIMScheduler

        self.components, self.config, self.repeats = components, config or MindDiffuserConfig(), int(repeats)
        self.unet, self.vae, self.device = components.unet, components.vae, components.device
        self.scheduler = DDIMScheduler.from_config(components.scheduler.config)
        self.scheduler.set_timesteps(self.config.steps)
        descending = [int(t) for t in self.scheduler.timesteps]
        self.noise_timestep = descending[::-1][self.config.noise_index]
        self.timesteps = descending[self.config.steps - self.config.denoise_steps :]
        self._uncond: dict[int, torch.Tensor] = {}
        self.losses: list[list[float]] = []
        self.saved: torch.Tensor | None = None

    def unconditional(self, tokens: int) -> torch.Tensor:
        """ "" encoded at ``tokens`` tokens (the reference's learned conditioning of [""] under its
        15-token setting)."""
        if tokens not in self._uncond:
            self._uncond[tokens] = encode_short(self.components, [[""]], tokens)[0].to(self.device)
        return self._uncond[tokens]

    # ------------------------------------------------------------------ stage 1

    def noised(self, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.scheduler.add_noise(z, noise, torch.tensor([self.noise_timestep]))

    def step(self, x: torch.Tensor, t: int, c: torch.Tensor) -> torch.Tensor:
        """One DDIM step (η = 0) with CFG: ε = ε_u + s·(ε_c − ε_u)."""
        dtype = self.unet.dtype
        if self.config.cfg_scale > 1:
            ctx = torch.cat([self.unconditional(c.shape[1]).expand(len(x), -1, -1), c])
            eps_u, eps_c = (
                self.unet(torch.cat([x, x]).to(dtype), t, encoder_hidden_states=ctx.to(dtype))
                .sample.float()
                .chunk(2)
            )
            eps = eps_u + self.config.cfg_scale * (eps_c - eps_u)
        else:
            eps = self.unet(x.to(dtype), t, encoder_hidden_states=c.to(dtype)).sample.float()
        return self.scheduler.step(eps, t, x, eta=0.0).prev_sample

    def denoise(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The planned steps from the noised latent; checkpointed per step while autograd records."""
        keep = torch.is_grad_enabled() and self.config.gradient_checkpointing
        for t in self.timesteps:
            x = checkpoint(self.step, x, t, c, use_reentrant=False) if keep else self.step(x, t, c)
        return x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent → image in [−1, 1] (the VAE's range)."""
        return self.vae.decode((x / self.components.latent_scale).to(self.vae.dtype)).sample.float()

    # ------------------------------------------------------------------ stage 2

    def loss_fn(self, g: torch.Tensor) -> FeatureLoss:
        """Masked, inverse-norm-weighted per-layer MSE: the generated features are multiplied by
        the mask (g ≠ 0)."""
        enc = self.components.guidance
        dtype = next(enc.parameters()).dtype
        mask = (g != 0).to(torch.float32)
        resize = self.config.guidance_resize
        return FeatureLoss(
            lambda im: enc(im.to(dtype), resize=resize).float() * mask, g, self.config.layer_boosts
        )

    def refine(
        self, z: torch.Tensor, c: torch.Tensor, g: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Adam on z (or c and z) through the whole sampler; returns the refined (z, c). ``saved`` keeps the
        image ([−1, 1]) generated in the last iteration whose index is a multiple of SAVE_EVERY (before
        that step's update)."""
        cfg = self.config
        loss_fn = self.loss_fn(g)
        z = z.detach().clone().requires_grad_(True)
        c = c.detach().clone().requires_grad_(cfg.optimise == "c+z")
        opt = torch.optim.Adam([z, c] if cfg.optimise == "c+z" else [z], lr=cfg.lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
        fixed = self.draw(z, generator) if cfg.refine_noise == "fixed" else None
        self.losses, self.saved = [], None
        for i in range(cfg.iterations):
            noise = fixed if fixed is not None else self.draw(z, generator)
            with torch.enable_grad():
                image = self.decode(self.denoise(self.noised(z, noise), c))
                if i % SAVE_EVERY == 0:
                    self.saved = image.detach()
                per_repeat = loss_fn(image)
                opt.zero_grad(set_to_none=True)
                per_repeat.sum().backward()
            opt.step()
            sched.step()
            self.losses.append(per_repeat.detach().cpu().tolist())
        return z.detach(), c.detach()

    # ------------------------------------------------------------------ the whole method

    def draw(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(z.shape, generator=generator).to(self.device)

    def _check(self, c: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None) -> None:
        cross = self.unet.config.cross_attention_dim
        if tuple(z.shape) != tuple(self.components.latent_shape):
            raise DataError(
                f"z has shape {tuple(z.shape)}, the stack's latents are {tuple(self.components.latent_shape)}"
            )
        if c.ndim != 2 or c.shape[-1] != cross:
            raise DataError(f"c has shape {tuple(c.shape)}, the UNet expects (tokens, {cross})")
        if self.config.iterations and g is None:
            raise DataError(
                "stage 2 (minddiffuser.iterations > 0) needs decoded g",
                fix="decode g, or set minddiffuser.iterations=0 for stage 1 only",
            )

    def __call__(
        self, c: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None = None, seed: int = 42
    ) -> torch.Tensor:
        self._check(c, z, g)
        generator = torch.Generator().manual_seed(int(seed))
        z = z.float().to(self.device).expand(self.repeats, *z.shape).clone()
        c = c.float().to(self.device).expand(self.repeats, *c.shape).clone()
        self.losses = []
        if self.config.iterations:
            z, c = self.refine(z, c, g.float().to(self.device), generator)
        if self.config.iterations and self.config.returned_image == "last_saved":
            image = self.saved
        else:
            with torch.no_grad():
                image = self.decode(self.denoise(self.noised(z, self.draw(z, generator)), c))
        return (image / 2 + 0.5).clamp(0, 1)
