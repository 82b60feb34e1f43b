"""The low-level z decoder head: H → a small feature map → diffusers' convolutional ``Decoder`` → z.

As the released MindEye1-style model (method notes §4.2; ND:src/models.py): a bias-free linear to a (channels,
s, s) map, GroupNorm(1), then up-decoder blocks that double the side ``len(up_channels) - 1`` times to reach
the latent's side (16 → 64 for SD v1.4; 4 → 16 for the mini zoo). A 1×1-convolution projector on
the same map gives one token per position for the optional soft-contrastive loss.
"""

from __future__ import annotations

import torch
from torch import nn


class LatentHead(nn.Module):
    def __init__(
        self,
        hidden: int,
        shape: list[int] | tuple[int, int, int],
        map_channels: int = 64,
        up_channels: list[int] | tuple[int, ...] = (64, 128, 256),
        norm_groups: int = 32,
        cont_dim: int = 0,
    ):
        super().__init__()
        from diffusers.models.autoencoders.vae import Decoder

        channels, height, width = (int(v) for v in shape)
        factor = 2 ** (len(up_channels) - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"latent side {height}×{width} is not divisible by the "
                f"upsampling factor {factor} of {len(up_channels)} up blocks"
            )
        self.shape = (channels, height, width)
        self.map_shape = (map_channels, height // factor, width // factor)
        self.linear = nn.Linear(hidden, map_channels * self.map_shape[1] * self.map_shape[2], bias=False)
        self.norm = nn.GroupNorm(1, map_channels)
        self.decoder = Decoder(
            in_channels=map_channels,
            out_channels=channels,
            up_block_types=("UpDecoderBlock2D",) * len(up_channels),
            block_out_channels=tuple(up_channels),
            layers_per_block=1,
            norm_num_groups=norm_groups,
        )
        for name, p in self.decoder.named_parameters():
            if name.endswith(
                "to_k.bias"
            ):  # shifts every logit of a query equally: no effect, no gradient but noise
                p.requires_grad_(False)
        self.projector = None
        if cont_dim:
            self.projector = nn.Sequential(
                nn.Conv2d(map_channels, cont_dim, 1, bias=False),
                nn.GroupNorm(1, cont_dim),
                nn.ReLU(),
                nn.Conv2d(cont_dim, cont_dim, 1, bias=False),
                nn.GroupNorm(1, cont_dim),
                nn.ReLU(),
                nn.Conv2d(cont_dim, cont_dim, 1),
            )

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, H) → z (B, C, h, w) and projector tokens (B, s·s, cont_dim) or None."""
        fmap = self.norm(self.linear(h).view(h.shape[0], *self.map_shape))
        z = self.decoder(fmap)
        maps = None if self.projector is None else self.projector(fmap).flatten(2).transpose(1, 2)
        return z, maps
