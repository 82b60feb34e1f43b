"""The zoo trainer's own settings: architecture and optimisation of each part, in one validated model.

They are separate from the top-level ``Config`` (whose ``zoo`` section says which stack to *load*):
these say how to *make* one. Defaults are the shipped ``insilico-64`` zoo (see its README for why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from ...config.base import Section, unknown_keys
from ...errors import ConfigError


class OptimSettings(Section):
    """What every part shares: steps, batch, AdamW with linear warmup and cosine decay."""

    steps: int = 1000
    """Optimiser steps."""
    batch_size: int = 32
    """Images per step."""
    lr: float = 1e-3
    """Peak learning rate (reached after ``warmup`` steps, then cosine decay to ``lr *
    final_lr_fraction``)."""
    warmup: int = 100
    """Linear warm-up steps."""
    final_lr_fraction: float = 0.05
    """Learning rate at the last step, as a fraction of ``lr``."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""

    @model_validator(mode="after")
    def _ranges(self) -> OptimSettings:
        # checked here rather than with Field(ge=...) because every part redefines these defaults
        rules = [
            ("steps", self.steps >= 1, "≥ 1"),
            ("batch_size", self.batch_size >= 1, "≥ 1"),
            ("lr", self.lr >= 0, "≥ 0"),
            ("warmup", self.warmup >= 0, "≥ 0"),
            ("final_lr_fraction", 0 <= self.final_lr_fraction <= 1, "in [0, 1]"),
            ("weight_decay", self.weight_decay >= 0, "≥ 0"),
            ("grad_clip", self.grad_clip >= 0, "≥ 0"),
        ]
        for name, ok, want in rules:
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(self, name)}")
        return self


class AutoencoderSettings(OptimSettings):
    """diffusers ``AutoencoderKL``: 3 levels (downsampling 4) so 64 px images become 4×16×16 latents."""

    block_out_channels: list[int] = [16, 32, 64]
    """Channels per level; the number of levels sets the downsampling factor 2**(levels-1). Each level costs
    about the same (side² × channels²); these keep the decoder cheap enough to back-propagate
    through while sampling."""
    layers_per_block: int = 1
    """ResNet blocks per encoder level (the decoder has one more, as in diffusers)."""
    norm_num_groups: int = 8
    """GroupNorm groups (must divide every entry of block_out_channels)."""
    latent_channels: int = 4
    """Latent channels (4, like SD)."""
    mid_block_attention: bool = True
    """Self-attention in the mid block, as SD's VAE has."""
    kl_weight: float = 1e-4
    """Weight of the KL term (per latent element) against the per-pixel reconstruction losses."""
    ssim_weight: float = 1.0
    """Weight of the (1 − SSIM) term beside the L1 term; SSIM is the quality we are asked to reach."""
    crop: int | None = 32
    """Train on random square crops of this side (a conv net learns the same local maps 4× cheaper at half the
    side); None trains on whole images. Evaluation and use are always on whole images."""
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 50


class DecoderSettings(OptimSettings):
    """Second autoencoder phase: the decoder alone on whole images, encoder frozen (0 steps: skipped)."""

    ssim_weight: float = 1.0
    """Weight of (1 − SSIM) beside L1."""
    steps: int = 1000
    batch_size: int = 16
    lr: float = 5e-4
    warmup: int = 20


class ClipSettings(OptimSettings):
    """transformers ``CLIPModel``: a small ViT (the guidance tower) and a text transformer,
    trained contrastively."""

    patch_size: int = 8
    """Vision patch size; (resolution / patch)^2 + 1 tokens per image (65 at 64 px)."""
    vision_width: int = 64
    """Vision hidden size: the width of every g feature (g is 6 × 65 × 64 per image)."""
    vision_layers: int = 6
    """Vision blocks; the guidance hooks need at least max(zoo.guidance_layers) + 1."""
    vision_heads: int = 2
    text_width: int = 64
    """Text hidden size: the width of c (32 × 64 per image) and the UNet's cross_attention_dim."""
    text_layers: int = 4
    text_heads: int = 2
    max_length: int = 32
    """Tokens per caption (tokenizer.model_max_length and max_position_embeddings)."""
    projection_dim: int = 64
    """Width of the shared image/text embedding."""
    steps: int = 1200
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.05


class UNetSettings(OptimSettings):
    """diffusers ``UNet2DConditionModel`` on the latents, conditioned on the text encoder's
    last hidden state."""

    block_out_channels: list[int] = [32, 64, 128]
    """Channels per level (3 levels: 16 → 8 → 4 for 16×16 latents); small enough for ~37 CFG+SAG steps per
    image in well under a second on a laptop CPU."""
    down_block_types: list[str] = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    up_block_types: list[str] = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
    layers_per_block: int = 1
    attention_heads: int = 4
    """Heads of every attention layer (diffusers' ``attention_head_dim`` argument, which counts heads)."""
    norm_num_groups: int = 16
    cfg_dropout: float = 0.1
    """Probability that a training caption is replaced by "" (classifier-free guidance)."""
    snr_gamma: float | None = 5.0
    """Min-SNR-γ loss weighting (None: SD's plain ε-MSE)."""
    ema_decay: float = 0.998
    """Decay of the exponential moving average of the weights; the EMA weights are the ones saved."""
    init_from: str | None = None
    """A saved ``unet/`` folder to start from instead of random weights: a second stage that extends a
    finished UNet with a fresh warm-up and cosine schedule of ``steps`` (its architecture must match)."""
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3


class ZooTrainSettings(Section):
    """Everything ``neuraldiffuser zoo train`` needs besides the dataset and the output folder."""

    seed: int = 0
    """Seeds every part (each part derives its own stream from it)."""
    checkpoint_every: int = Field(250, ge=1)
    """Steps between checkpoints (atomic; a rerun of the same command resumes from the last one)."""
    save_dtype: Literal["float32", "float16"] = "float16"
    """Precision of the saved weights (the loader casts to zoo.dtype, float32 by default)."""
    autoencoder: AutoencoderSettings = AutoencoderSettings()
    decoder: DecoderSettings = DecoderSettings()
    clip: ClipSettings = ClipSettings()
    unet: UNetSettings = UNetSettings()

    @model_validator(mode="after")
    def _check(self) -> ZooTrainSettings:
        ae = self.autoencoder
        bad = [c for c in ae.block_out_channels if c % ae.norm_num_groups]
        if bad:
            raise ValueError(
                f"autoencoder.norm_num_groups={ae.norm_num_groups} does not divide channels {bad}"
            )
        if self.clip.vision_width % self.clip.vision_heads or self.clip.text_width % self.clip.text_heads:
            raise ValueError("clip widths must be divisible by their head counts")
        if len(self.unet.down_block_types) != len(self.unet.block_out_channels) or len(
            self.unet.up_block_types
        ) != len(self.unet.block_out_channels):
            raise ValueError(
                "unet.down_block_types and up_block_types need one entry per block_out_channels entry"
            )
        return self


def load_settings(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ZooTrainSettings:
    """Defaults < YAML file < overrides (nested dict), with unknown keys named."""
    from ...config.load import _read_yaml, deep_merge

    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    data = deep_merge(data, overrides or {})
    source = str(path) if path else "zoo train settings"
    bad = unknown_keys(ZooTrainSettings, data)
    if bad:
        key, guess = bad[0]
        raise ConfigError(
            f"unknown key '{key}'",
            where=source,
            fix=f"did you mean '{guess}'?" if guess else "see zoo/train/settings.py",
        )
    try:
        return ZooTrainSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"key '{loc}': {err['msg']}", where=source) from None


def settings_yaml(settings: ZooTrainSettings) -> str:
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
