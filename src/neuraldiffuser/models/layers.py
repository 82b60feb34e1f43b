"""Building blocks of the fMRI decoders (method notes §4.1–§4.2).

Two flavours exist because the reference uses two: the MindEye2-style path for token targets
(c, g) and the MindEye1-style path for the low-level latent z. Both map voxels into a shared width
H through a per-subject linear adapter, then through residual blocks shared by all subjects.
"""

from __future__ import annotations

import torch
from torch import nn

STYLES = ("token", "latent")


class VoxelAdapters(nn.Module):
    """One linear map per subject from its voxels into the shared width H.

    ``token`` style is a bare ``Linear`` with bias (MindEye2's "ridge"); ``latent`` style adds
    LayerNorm, SiLU and dropout after a bias-free ``Linear`` (MindEye1's low-level encoder).
    """

    def __init__(self, subjects: dict[str, int], hidden: int, style: str = "token", dropout: float = 0.5):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"adapter style must be one of {STYLES}, got {style!r}")
        self.style = style
        self.subjects = dict(subjects)
        layers = {}
        for name, n_vox in self.subjects.items():
            if style == "token":
                layers[name] = nn.Linear(n_vox, hidden)
            else:
                layers[name] = nn.Sequential(
                    nn.Linear(n_vox, hidden, bias=False), nn.LayerNorm(hidden), nn.SiLU(), nn.Dropout(dropout)
                )
        self.layers = nn.ModuleDict(layers)

    def forward(self, groups: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """``groups`` = [(subject, (n_s, voxels)), ...] → (Σ n_s, H) in the same order."""
        return torch.cat([self.layers[name](x) for name, x in groups], dim=0)


class ResidualMLP(nn.Module):
    """The shared backbone: ``blocks`` residual MLP blocks of width H.

    ``token``: x + Linear(GELU(Linear(LN(x)))) with dropout between, as MindEye2's BrainNetwork
    (its channel mixer over a length-1 sequence is a learned constant and is left out).
    ``latent``: x + Dropout(SiLU(LN(Linear(x)))) with bias-free linears, as MindEye1's Voxel2SD.
    """

    def __init__(self, hidden: int, blocks: int, style: str = "token", dropout: float = 0.15):
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"backbone style must be one of {STYLES}, got {style!r}")
        if style == "token":
            make = lambda: nn.Sequential(  # noqa: E731
                nn.LayerNorm(hidden),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
            )
        else:
            make = lambda: nn.Sequential(  # noqa: E731
                nn.Linear(hidden, hidden, bias=False), nn.LayerNorm(hidden), nn.SiLU(), nn.Dropout(dropout)
            )
        self.blocks = nn.ModuleList(make() for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


class TokenHead(nn.Module):
    """Linear map from H to T×D tokens: the decoder's direct estimate, which conditions the prior."""

    def __init__(self, hidden: int, tokens: int, width: int):
        super().__init__()
        self.tokens, self.width = tokens, width
        self.linear = nn.Linear(hidden, tokens * width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h).view(-1, self.tokens, self.width)


class RetrievalProjector(nn.Module):
    """Per-token [LN → GELU → Linear(D, D)] × depth; its output feeds only the contrastive loss."""

    def __init__(self, width: int, depth: int = 3):
        super().__init__()
        self.layers = nn.Sequential(
            *[nn.Sequential(nn.LayerNorm(width), nn.GELU(), nn.Linear(width, width)) for _ in range(depth)]
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(tokens)


def takes_decay(name: str, param: nn.Parameter) -> bool:
    """Weight decay on matrices; none on biases and norm scales (method notes §4.4), except that the
    per-subject adapters always decay, bias included, as the reference's voxel encoder does."""
    return name.startswith("adapters.") or param.ndim >= 2
