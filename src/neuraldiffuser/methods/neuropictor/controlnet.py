"""The ControlNet-style branch and the trainable whole (method notes §8.2).

``FMRIControlNet`` is diffusers' ``ControlNetModel`` (a trainable copy of the UNet encoder and middle
block whose outputs pass through zero-initialised 1×1 convolutions into the frozen UNet's skips) with one
change: its conditioning embedding, which would encode a hint *image*, is the identity. The fMRI
feature map made by ``LowLevelNet`` is passed as the conditioning and is therefore added to the output of
the ControlNet's conv_in, the injection point of the reference. ``from_unet`` copies the UNet's weights;
``save_pretrained``/``from_pretrained`` work as for any diffusers model.

``NeuroPictor`` is the trainable pair (fMRI model + ControlNet); ``noise_prediction`` runs it with the
frozen UNet.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from diffusers import ControlNetModel
from torch import nn

from ...errors import ModelLoadError
from .model import FMRIModel


class FMRIControlNet(ControlNetModel):
    """``ControlNetModel`` whose ``controlnet_cond`` is a feature map of the first block's
    shape, added as is."""

    @functools.wraps(ControlNetModel.__init__)  # keeps the signature diffusers reads to build the config
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.controlnet_cond_embedding = nn.Identity()


class NeuroPictor(nn.Module):
    """The trainable parts: ``fmri`` (adapters, encoder, high/low-level nets) and ``controlnet``."""

    def __init__(self, fmri: FMRIModel, controlnet: FMRIControlNet):
        super().__init__()
        self.fmri, self.controlnet = fmri, controlnet

    @classmethod
    def from_unet(cls, fmri: FMRIModel, unet) -> NeuroPictor:
        return cls(fmri, FMRIControlNet.from_unet(unet))

    def save_pretrained(self, path: str | Path) -> None:
        self.fmri.save_pretrained(Path(path) / "fmri")
        self.controlnet.save_pretrained(Path(path) / "controlnet")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> NeuroPictor:
        path = Path(path)
        for sub in ("fmri", "controlnet"):
            if not (path / sub / "config.json").is_file():
                raise ModelLoadError(
                    f"no NeuroPictor model ({sub}/config.json missing)",
                    where=str(path),
                    fix="train one with `neuraldiffuser train DATASET TARGETS --method neuropictor -o RUN`",
                )
        return cls(
            FMRIModel.from_pretrained(path / "fmri"), FMRIControlNet.from_pretrained(path / "controlnet")
        )

    def forward(
        self,
        groups: list[tuple[str, torch.Tensor]],
        x: torch.Tensor,
        t: torch.Tensor,
        unet,
        uncond: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (ε̂, high-level main-branch output). Rows with ``drop`` get the ""
        context (control kept)."""
        context, main, cmap = self.fmri(groups)
        if drop is not None:
            context = torch.where(drop.view(-1, 1, 1), uncond.to(context.dtype).expand_as(context), context)
        return noise_prediction(unet, self, x, t, context, cmap), main

    def control(self, x: torch.Tensor, t, context: torch.Tensor, cmap: torch.Tensor, scale: float = 1.0):
        """The ControlNet's residuals for the UNet's down blocks and middle block."""
        dtype = self.controlnet.dtype
        down, mid = self.controlnet(
            x.to(dtype),
            t,
            encoder_hidden_states=context.to(dtype),
            controlnet_cond=cmap.to(dtype),
            conditioning_scale=scale,
            return_dict=False,
        )
        return down, mid


def noise_prediction(
    unet,
    model: NeuroPictor,
    x: torch.Tensor,
    t,
    context: torch.Tensor,
    cmap: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """ε̂ of the frozen UNet with the fMRI context in its cross-attention and the ControlNet
    residuals in its skips."""
    down, mid = model.control(x, t, context, cmap, scale)
    dtype = unet.dtype
    return unet(
        x.to(dtype),
        t,
        encoder_hidden_states=context.to(dtype),
        down_block_additional_residuals=[d.to(dtype) for d in down],
        mid_block_additional_residual=mid.to(dtype),
    ).sample.float()
