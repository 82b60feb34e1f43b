from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt

from ..base import Section


class ZooConfig(Section):
    """Which diffusion stack and guidance encoder to load (a local folder, a hub id, or the
    shipped mini zoo)."""

    path: str = "builtin:insilico-64"
    """Folder in diffusers' Stable Diffusion layout (vae/, unet/, scheduler/, tokenizer/, text_encoder/), a
    hub id such as 'CompVis/stable-diffusion-v1-4', or 'builtin:<name>' for a zoo shipped
    inside the package."""
    guidance_encoder: str | None = None
    """CLIP vision tower for g features (folder or hub id). None: <path>/guidance_encoder,
    else <path>/clip."""
    guidance_layers: list[NonNegativeInt] = [0, 1, 2, 3, 4, 5]
    """0-based blocks whose MLP output is hooked; [0..5] = ViT-B/32 blocks 1–6 ('Linear-2…12'
    in the reference)."""
    guidance_normalization: Literal["imagenet", "clip"] = "imagenet"
    """The reference normalises guidance inputs with ImageNet statistics, not CLIP's."""
    guidance_antialias: bool = True
    """Antialias the resize to the tower's input size. The released code ran torchvision ≤ 0.16, whose tensor
    resize did not antialias; the paper preset turns it off to match."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Precision the components are loaded in (stored weights are cast; fp16 halves GPU memory)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when ``path`` is a hub id; None: the default branch."""
    download: bool = False
    """Let a hub id that is not in the local Hugging Face cache be downloaded. False: such a path fails at
    once, saying that the folder does not exist and how to point at a local copy (nothing
    waits on the network)."""
