"""The NeuralDiffuser sampler: img2img DDIM from the decoded z with CFG, SAG and g guidance (method notes §5).

Per image, the R repeats share c, z and g and differ only in their initial noise, so they go
through every UNet call as one batch. Unguided steps run without autograd; the guided ones reuse
the conditional half of the CFG batch as the UNet prediction that the g loss differentiates, so a
guided step costs one UNet forward + backward more than an unguided one, not two forwards. No
intermediate latent is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..config.sections.sampler import SamplerConfig
from ..errors import DataError
from .guidance import FeatureLoss, GuidanceStep
from .sag import attention_mask, capture_mid_attention, degrade

AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Plan:
    """Which timesteps are denoised, at which level the start is noised, and how many steps are g-guided."""

    timesteps: list[int]
    noise_timestep: int
    guided_steps: int


def make_plan(scheduler, config: SamplerConfig) -> Plan:
    """img2img schedule: the last ⌊steps·strength⌋ DDIM timesteps; the first ⌊n·η⌋ of them guided (κ > 0)."""
    scheduler.set_timesteps(config.steps)
    n = min(int(config.steps * config.strength), config.steps)
    timesteps = [int(t) for t in scheduler.timesteps[config.steps - n :]]
    if config.noise_timestep == "released":
        noise_t = int(
            n / config.steps * scheduler.config.num_train_timesteps
        )  # 740 while denoising starts at 721
    else:
        noise_t = timesteps[0]
    guided = int(n * config.eta) if config.kappa > 0 else 0
    return Plan(timesteps, noise_t, guided)


class NeuralDiffuserSampler:
    """``sampler(c, z, g, seed=...)`` → (R, 3, H, W) images in [0, 1].

    ``components`` is a :class:`~neuraldiffuser.zoo.loader.Components`; c is (T, D) tokens, z a
    (C, h, w) latent already multiplied by the VAE scaling factor, g (L, tokens, width) features.
    """

    def __init__(self, components, config: SamplerConfig | None = None):
        from diffusers import DDIMScheduler

        self.components = components
        self.config = config or SamplerConfig()
        self.unet, self.vae = components.unet, components.vae
        self.scheduler = DDIMScheduler.from_config(components.scheduler.config)
        self.device = components.device
        self.plan = make_plan(self.scheduler, self.config)
        self._uncond: torch.Tensor | None = None

    @property
    def uncond(self) -> torch.Tensor:
        """Text-encoder output for the empty caption (computed once)."""
        if self._uncond is None:
            self._uncond = self.components.unconditional(1).float()
        return self._uncond

    # ------------------------------------------------------------------ inputs

    def generator(self, seed: int) -> torch.Generator:
        device = self.device if self.config.noise_device == "model" else torch.device("cpu")
        return torch.Generator(device=device).manual_seed(int(seed))

    def initial_latents(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """R noised copies of z: one draw per repeat, then ``burn_draws`` discarded draws (as
        the released loop)."""
        noise = []
        for _ in range(self.config.repeats):
            noise.append(torch.randn(z.shape, generator=generator, device=generator.device))
            for _ in range(self.config.burn_draws):
                torch.randn(z.shape, generator=generator, device=generator.device)
        eps = torch.stack(noise).to(self.device)
        z = z.to(self.device).expand(self.config.repeats, *z.shape)
        return self.scheduler.add_noise(z, eps, torch.tensor([self.plan.noise_timestep]))

    def _check(self, c: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None) -> None:
        cross = self.unet.config.cross_attention_dim
        if z.shape != self.components.latent_shape:
            raise DataError(
                f"z has shape {tuple(z.shape)}, the stack's latents are {self.components.latent_shape}"
            )
        if c.ndim != 2 or c.shape[-1] != cross:
            raise DataError(f"c has shape {tuple(c.shape)}, the UNet expects (tokens, {cross})")
        if self.config.cfg_scale > 1 and c.shape[0] != self.uncond.shape[1]:
            raise DataError(
                f"c has {c.shape[0]} tokens but the unconditional context has {self.uncond.shape[1]}",
                fix="extract c with this zoo's tokenizer",
            )
        if self.plan.guided_steps and g is None:
            raise DataError(
                "κ > 0 needs a g target", fix="decode g, or set sampler.kappa=0 for the unguided sampler"
            )

    # ------------------------------------------------------------------ the loop

    def __call__(
        self, c: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None = None, seed: int = 42
    ) -> torch.Tensor:
        self._check(c, z, g)
        return self.denoise(self.initial_latents(z.float(), self.generator(seed)), c, g)

    def batch(
        self,
        cs: Sequence[torch.Tensor],
        zs: Sequence[torch.Tensor],
        gs: Sequence[torch.Tensor | None],
        seeds: Sequence[int],
    ) -> list[torch.Tensor]:
        """Several images in one pass: their B × R rows share every UNet call, which on a CPU costs far less
        than B separate calls. Each image keeps its own seed, so it starts from the noise it would get alone
        and ends equal to ``self(c, z, g, seed)`` up to float rounding. Returns one (R, 3, H, W) per image."""
        for c, z, g in zip(cs, zs, gs, strict=True):
            self._check(c, z, g)
        R = self.config.repeats
        x = torch.cat(
            [self.initial_latents(z.float(), self.generator(s)) for z, s in zip(zs, seeds, strict=True)]
        )
        c_rows = torch.cat([c.float().expand(R, *c.shape) for c in cs])
        g_rows = torch.cat([g.float().expand(R, *g.shape) for g in gs]) if self.plan.guided_steps else None
        return list(self.denoise(x, c_rows, g_rows).split(R))

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, c: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """Run the planned steps from the noised latents x (N, C, h, w) and decode the result.

        c and g are one image's (T, D) and (L, tokens, width), shared by all N rows, or one per row.
        """
        R = x.shape[0]
        cond = c.float().to(self.device)
        cond = cond if cond.ndim == 3 else cond.expand(R, *c.shape)
        contexts = [self.uncond.expand(R, -1, -1), cond] if self.config.cfg_scale > 1 else [cond]
        guide = self.guidance_step(g) if self.plan.guided_steps else None
        sag = capture_mid_attention(self.unet) if self.config.sag_scale > 0 else nullcontext()
        with sag as store, self._autocast():
            for k, t in enumerate(self.plan.timesteps):
                eps = self.predict_noise(x, t, contexts, store, guide if k < self.plan.guided_steps else None)
                x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        return self.decode(x)

    def guidance_step(self, g: torch.Tensor) -> GuidanceStep:
        enc = self.components.guidance
        dtype = next(enc.parameters()).dtype
        loss = FeatureLoss(lambda im: enc(im.to(dtype)), g.float().to(self.device), self.config.layer_boosts)
        return GuidanceStep(
            self.unet,
            self.vae,
            loss,
            self.config.kappa,
            self.config.x0_formula,
            self.config.gradient_checkpointing,
        )

    def predict_noise(self, x, t, contexts, store, guide) -> torch.Tensor:
        """ε for one step: CFG, then SAG, then the g-guidance shift (each term as in method notes §5.3)."""
        alpha_bar = self.scheduler.alphas_cumprod[t].to(self.device)
        if store is not None:
            store.arm()  # records the first UNet call below: the unconditional one under CFG
        if guide is None:
            eps_all = self._unet(torch.cat([x] * len(contexts)), t, torch.cat(contexts)).chunk(len(contexts))
        else:
            eps_all = [self._unet(x, t, ctx) for ctx in contexts[:-1]]
            eps_c, grad = guide(x, t, alpha_bar, contexts[-1], self.config.guidance_chunk)
            eps_all.append(eps_c)
        if store is not None:
            store.disarm()
        eps = (
            eps_all[0] + self.config.cfg_scale * (eps_all[-1] - eps_all[0])
            if len(eps_all) == 2
            else eps_all[0]
        )
        if store is not None:
            eps = eps + self.config.sag_scale * self.sag_term(x, t, alpha_bar, eps_all[0], contexts[0], store)
        if guide is not None:
            eps = eps - (1 - alpha_bar).sqrt() * grad
        return eps

    def sag_term(self, x, t, alpha_bar, eps_u, context, store) -> torch.Tensor:
        """ε_u − ε(degraded x): blur x̂0 where the unconditional self-attention concentrates,
        re-noise, re-predict."""
        x0 = (x - (1 - alpha_bar).sqrt() * eps_u) / alpha_bar.sqrt()
        R = x.shape[0]
        mask = attention_mask(
            store.probs[: R * store.heads], R, store.map_size, x.shape[-2:]
        )  # first R rows: ε_u's call
        degraded = degrade(x0, mask.to(x0.dtype), eps_u, t, self.scheduler)
        return eps_u - self._unet(degraded, t, context)

    def _unet(self, x: torch.Tensor, t: int, context: torch.Tensor) -> torch.Tensor:
        dtype = self.unet.dtype
        return self.unet(x.to(dtype), t, encoder_hidden_states=context.to(dtype)).sample.float()

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        image = self.vae.decode((x / self.components.latent_scale).to(self.vae.dtype)).sample.float()
        return (image / 2 + 0.5).clamp(0, 1)

    def _autocast(self):
        if self.device.type == "cuda" and self.config.autocast in AUTOCAST:
            return torch.autocast("cuda", dtype=AUTOCAST[self.config.autocast])
        return nullcontext()
