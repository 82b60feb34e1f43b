"""The fMRI side of the NeuroPictor-style model (method notes §8.1–§8.2).

- ``FMRIEncoder``: per-subject linear adapters into one width, a shared tokeniser to ``tokens × width``
  and shared pre-norm transformer blocks. It stands in for the reference's fMRI-PTE autoencoder, which
  reads a 256×256 cortical-surface rendering and was pretrained on UK Biobank: neither the renderer nor
  UK Biobank is available here, so each subject's voxels reach the common token space through their own
  adapter (as MindEye2 and our decoders do) and the whole encoder is trained with the diffusion loss.
- ``HighLevelNet``: token mixing (Conv1d k=1, tokens → mid → context length), Linear to the UNet's
  cross-attention width, LayerNorm: the context that replaces the text in every cross-attention. The
  fine-tuning stage adds a second, identical branch that ends in a zero-initialised Conv1d(k=3) and is
  added residually, so it starts as the identity.
- ``LowLevelNet``: token mixing to the ControlNet's first-block channels, Linear to the latent grid
  with SiLU, and a zero-initialised Conv1d(k=3): the feature map added after the ControlNet's conv_in.

``FMRIModel`` holds the three and is saved as config.json + safetensors through diffusers' mixins.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from ...errors import ModelLoadError
from ...models.layers import VoxelAdapters


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TokenMixer(nn.Sequential):
    """(B, n_in, D) → (B, n_out, D): Conv1d(k=1) over the token axis, GELU (``gelu``; the reference has none,
    so its two convolutions compose to one linear map), Conv1d(k=1). Identity in place of GELU keeps
    the weight names."""

    def __init__(self, n_in: int, mid: int, n_out: int, gelu: bool = True):
        super().__init__(
            nn.Conv1d(n_in, mid, 1), nn.GELU() if gelu else nn.Identity(), nn.Conv1d(mid, n_out, 1)
        )


class FMRIEncoder(nn.Module):
    """[(subject, voxels)] → (B, tokens, width) fMRI tokens."""

    def __init__(
        self,
        subjects: dict[str, int],
        adapter_width: int,
        tokens: int,
        seed_width: int,
        width: int,
        depth: int,
        heads: int,
        dropout: float,
    ):
        super().__init__()
        self.tokens, self.seed_width = tokens, seed_width
        self.adapters = VoxelAdapters(subjects, adapter_width, "token")
        self.adapter_norm = nn.LayerNorm(adapter_width)
        self.to_tokens = nn.Linear(adapter_width, tokens * seed_width)
        self.token_proj = nn.Linear(seed_width, width)
        self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = (
            nn.TransformerEncoder(layer, depth, enable_nested_tensor=False) if depth else nn.Identity()
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, groups: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
        h = nn.functional.gelu(self.adapter_norm(self.adapters(groups)))
        seeds = self.to_tokens(h).view(len(h), self.tokens, self.seed_width)
        return self.norm(self.blocks(self.token_proj(seeds) + self.pos))


class HighLevelNet(nn.Module):
    """fMRI tokens → (context, main-branch output); the sem loss supervises the main branch."""

    def __init__(
        self,
        tokens: int,
        mid: int,
        context_tokens: int,
        width: int,
        context_width: int,
        extra_branch: bool,
        gelu: bool = True,
    ):
        super().__init__()

        def branch() -> nn.Sequential:
            return nn.Sequential(
                TokenMixer(tokens, mid, context_tokens, gelu),
                nn.Linear(width, context_width),
                nn.LayerNorm(context_width),
            )

        self.main = branch()
        self.extra = (
            nn.Sequential(branch(), zero_module(nn.Conv1d(context_tokens, context_tokens, 3, padding=1)))
            if extra_branch
            else None
        )

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main = self.main(tokens)
        return (main if self.extra is None else main + self.extra(tokens)), main


class LowLevelNet(nn.Module):
    """fMRI tokens → (B, channels, side, side) map for the ControlNet's first block."""

    def __init__(self, tokens: int, mid: int, channels: int, width: int, side: int, gelu: bool = True):
        super().__init__()
        self.channels, self.side = channels, side
        self.mix = TokenMixer(tokens, mid, channels, gelu)
        self.to_grid = nn.Sequential(nn.Linear(width, side * side), nn.SiLU())
        self.out = zero_module(nn.Conv1d(channels, channels, 3, padding=1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.to_grid(self.mix(tokens))).view(len(tokens), self.channels, self.side, self.side)


class FMRIModel(ModelMixin, ConfigMixin):
    """Encoder + high-level + low-level networks: ``forward(groups)`` → (context, main, control map)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        subjects: dict[str, int],
        context_tokens: int,
        context_width: int,
        control_channels: int,
        latent_side: int,
        tokens: int = 257,
        width: int = 1024,
        adapter_width: int = 4096,
        seed_width: int = 64,
        depth: int = 4,
        heads: int = 16,
        high_mid: int = 128,
        low_mid: int = 514,
        extra_branch: bool = False,
        dropout: float = 0.0,
        mixer_gelu: bool = True,
    ):
        super().__init__()
        self.encoder = FMRIEncoder(subjects, adapter_width, tokens, seed_width, width, depth, heads, dropout)
        self.high = HighLevelNet(
            tokens, high_mid, context_tokens, width, context_width, extra_branch, mixer_gelu
        )
        self.low = LowLevelNet(tokens, low_mid, control_channels, width, latent_side, mixer_gelu)

    def forward(
        self, groups: list[tuple[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        unknown = [name for name, _ in groups if name not in self.encoder.adapters.layers]
        if unknown:
            raise ModelLoadError(
                f"the NeuroPictor model has no adapter for {unknown} (it has {list(self.config.subjects)})",
                fix="reconstruct the subject the model was fine-tuned on",
            )
        tokens = self.encoder(groups)
        context, main = self.high(tokens)
        return context, main, self.low(tokens)

    @classmethod
    def for_stage(
        cls, previous: FMRIModel, subjects: dict[str, int], extra_branch: bool
    ) -> tuple[FMRIModel, dict[str, list[str]]]:
        """A copy of ``previous`` with adapters for ``subjects`` (kept by name, new ones fresh, others
        dropped) and the extra high-level branch switched on or off (a new branch starts zero-initialised)."""
        cfg: dict[str, Any] = {k: v for k, v in dict(previous.config).items() if not k.startswith("_")}
        cfg.update(subjects=dict(subjects), extra_branch=bool(extra_branch))
        model = cls(**cfg)
        own = model.state_dict()
        keep = {
            k: v
            for k, v in previous.state_dict().items()
            if k in own and not (k.startswith("encoder.adapters.layers.") and k.split(".")[3] not in subjects)
        }
        bad = [k for k, v in keep.items() if own[k].shape != v.shape]
        if bad:
            raise ModelLoadError(
                f"weights of the previous stage do not fit: {bad[:3]}",
                fix="keep the neuropictor architecture fixed between stages",
            )
        result = model.load_state_dict(keep, strict=False)
        fresh = [
            k for k in result.missing_keys if k.startswith("encoder.adapters.") or k.startswith("high.extra.")
        ]
        other = sorted(set(result.missing_keys) - set(fresh))
        if other:
            raise ModelLoadError(
                f"weights of the previous stage lack {other[:4]}",
                fix="keep the neuropictor architecture fixed between stages",
            )
        return model, {"fresh": fresh, "dropped": sorted(set(previous.state_dict()) - set(keep))}
