from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Section


class DecoderConfig(Section):
    """fMRI decoder architecture (adapters, backbone, heads, prior, z decoder)."""

    layout: Literal["per_target", "multi_head"] = "per_target"
    """'per_target': one model per target family (c, each g layer, z) as the reference trains them;
    'multi_head': one shared adapter + backbone with a head per target (see docs/training.md
    for the comparison)."""
    targets: list[Literal["c", "g", "z"]] = ["c", "g", "z"]
    """Target families to decode."""
    hidden: int = Field(4096, ge=1)
    """Shared width H of the adapters and the residual MLP (c and g models, and the multi-head model)."""
    blocks: int = Field(4, ge=0)
    """Residual MLP blocks."""
    dropout: float = Field(0.15, ge=0, lt=1)
    """Dropout inside the residual blocks (token path)."""
    proj_depth: int = Field(3, ge=0)
    """[LN → GELU → Linear] layers of the retrieval projector."""
    prior: list[Literal["c", "g"]] = ["c", "g"]
    """Token targets that get a diffusion prior (decoding samples it); the others are decoded by their linear
    head, trained with a direct MSE in place of the prior's."""
    prior_network: Literal["ours", "mindeye2"] = "ours"
    """Denoiser of the prior: 'mindeye2' is MindEye2's DALLE2-style network (cosine-similarity multi-query
    attention, rotary + relative position bias, SwiGLU, null brain and null image tokens); 'ours' a plain
    pre-norm transformer that also adds the brain token at its position (docs/training.md compares them)."""
    prior_dim_head: int | None = Field(None, ge=1)
    """Width of each attention head of the 'mindeye2' network (None = width / prior_heads; the
    reference: 52 × 14 heads)."""
    prior_depth: int = Field(6, ge=0)
    """Transformer layers of the prior."""
    prior_heads: int = Field(12, ge=1)
    """Attention heads of the prior (for 'ours' they must divide the token width; the reference
    has 14 heads of 52)."""
    prior_ff_mult: int = Field(4, ge=1)
    """Feed-forward expansion of the prior's transformer layers."""
    prior_timesteps: int = Field(100, ge=1)
    """Diffusion steps of the prior's cosine schedule."""
    prior_cond_drop: float = Field(0.2, ge=0, lt=1)
    """Probability of replacing the brain tokens by the learned null tokens during training."""
    target_norm: Literal["raw", "rms", "standardize"] = "raw"
    """Space the token heads and priors work in: raw targets (the reference), targets divided by their RMS, or
    each dimension standardised with the mean and std of the training images' targets
    (saved with the model)."""
    z_hidden: int = Field(4096, ge=1)
    """Width H of the z model (per_target layout)."""
    z_blocks: int = Field(4, ge=0)
    """Residual blocks of the z model (per_target layout)."""
    z_dropout: float = Field(0.25, ge=0, lt=1)
    """Dropout in the z model's residual blocks (per_target layout; multi_head uses ``dropout``)."""
    z_adapter_dropout: float = Field(0.5, ge=0, lt=1)
    """Dropout after the z model's voxel adapter (per_target layout)."""
    z_map_channels: int = Field(64, ge=1)
    """Channels of the feature map the z upsampler starts from."""
    z_up_channels: list[int] = [64, 128, 256]
    """block_out_channels of diffusers' Decoder; the map side is the latent side / 2**(len - 1)."""
    z_norm_groups: int = Field(32, ge=1)
    """GroupNorm groups in the upsampler."""
