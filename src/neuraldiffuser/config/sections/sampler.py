from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import Section


class SamplerConfig(Section):
    """NeuralDiffuser's guided img2img DDIM sampler (method notes §5).

    The defaults fix the released code's quirks; the ``paper`` preset turns each one back on by its flag
    (``x0_formula``, ``noise_timestep``, ``burn_draws``, ``image_seed``, ``noise_device``).
    See docs/sampler.md.

    Keys nobody set take the zoo folder's recommendations (``<zoo>/sampler_defaults.json``; the shipped mini
    zoo: strength 0.6, κ 300, η 0.4), so the 'default' column, whose zoo is the mini zoo, shows those; a hub
    id (SD v1.4) keeps the paper's values written in the class.
    """

    steps: int = Field(50, ge=1)
    """DDIM inference steps of the full schedule (50: timesteps 981, 961, …, 1 for SD v1.4's scheduler)."""
    strength: float = Field(0.75, gt=0.0, le=1.0)
    """img2img strength: the last ⌊steps·strength⌋ timesteps are denoised, starting from the decoded z."""
    cfg_scale: float = Field(7.5, ge=0.0)
    """Classifier-free guidance scale (≤ 1 turns CFG off: only the conditional UNet call is made)."""
    sag_scale: float = Field(0.75, ge=0.0)
    """Self-attention guidance scale; 0 turns SAG off (no attention capture, no extra UNet call)."""
    kappa: float = Field(3e5, ge=0.0)
    """κ, scale of the primary-visual-feature (g) guidance; 0 is exactly the unguided sampler."""
    eta: float = Field(0.2, ge=0.0, le=1.0)
    """η: the first ⌊n·η⌋ of the n denoising steps are g-guided (the released settings: ⌊37·0.2⌋ = 7)."""
    repeats: int = Field(5, ge=1)
    """R reconstructions per image; they differ only in their initial noise and run through the
    UNet as one batch."""
    layer_boosts: list[float] = [1.5, 1.2, 1.0, 1.0, 1.0, 1.0]
    """a_L, multiplied onto the inverse-norm layer weights of the g loss, one per guidance
    layer (shallow first)."""
    x0_formula: Literal["standard", "released"] = "standard"
    """x̂0 in the guidance path: 'standard' (x−√(1−ᾱ)ε)/√ᾱ, or the released code's (x−(1−ᾱ)ε)/√ᾱ."""
    noise_timestep: Literal["first_step", "released"] = "first_step"
    """Noise level of the img2img start: the first denoising timestep (721 at the paper settings, as
    diffusers' img2img), or the released code's int(1000·n/steps) (740) while denoising
    still starts at 721."""
    burn_draws: int = Field(0, ge=0)
    """Extra random draws discarded after each repeat (the released code burns 40 to follow another
    repo's RNG stream)."""
    image_seed: Literal["by_index", "same"] = "by_index"
    """Each image's generator is seeded with seed + image index ('by_index'), or with the same seed for every
    image as the released code ('same'): then every image gets the same R noise draws."""
    noise_device: Literal["cpu", "model"] = "cpu"
    """Where the noise is drawn: a CPU generator (identical on every machine), or the model's device (on CUDA
    this is the stream the released code draws from with torch.randn_like after seeding)."""
    autocast: Literal["off", "fp16", "bf16"] = "fp16"
    """Mixed precision on CUDA devices (the released code runs under fp16 autocast); CPU
    always runs in fp32."""
    gradient_checkpointing: bool = False
    """Recompute UNet and VAE-decoder activations in the guidance backward pass: less memory,
    about 30% more time."""
    guidance_chunk: int | None = Field(None, ge=1)
    """Repeats per guidance forward/backward (None = all R at once); smaller uses less
    memory, same gradient."""
    image_batch: int = Field(1, ge=1)
    """Images sampled together, image_batch × repeats rows per UNet call. On a CPU the small calls of the mini
    zoo cost mostly overhead, so 8 is ~2× faster; results equal one-at-a-time up to float
    rounding (|Δ| ~1e-5)."""

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if int(self.steps * self.strength) < 1:
            raise ValueError(f"steps·strength = {self.steps}·{self.strength} leaves no denoising step")
        if not self.layer_boosts:
            raise ValueError("layer_boosts must give one boost per guidance layer")
        return self
