"""The guidance image encoder: a CLIP vision tower with hooks on the MLP outputs of chosen blocks.

NeuralDiffuser's g features are OpenAI CLIP ViT-B/32's "Linear-2, 4, …, 12": the output of
``mlp.c_proj`` of blocks 1–6, i.e. the MLP branch before it is added to the residual stream
(method notes §3.3). In transformers' CLIP that module is ``encoder.layers[k].mlp`` (its last op is fc2).
Images are resized to the tower's input size and normalised with ImageNet statistics, as the
reference does for both extraction and guidance.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class GuidanceEncoder(nn.Module):
    """``forward(images in [0, 1], (B, 3, H, W)) -> (B, L, tokens, width)``: one slice per hooked block."""

    def __init__(
        self,
        vision_model: nn.Module,
        layers: list[int],
        normalization: str = "imagenet",
        image_size: int | None = None,
        antialias: bool = True,
    ):
        super().__init__()
        self.vision = vision_model
        blocks = self._blocks()
        bad = [k for k in layers if not 0 <= k < len(blocks)]
        if bad:
            from ..errors import ModelLoadError

            raise ModelLoadError(
                f"guidance layers {bad} out of range: the tower has {len(blocks)} blocks (0-based)"
            )
        self.layers = list(layers)
        self.image_size = int(image_size or vision_model.config.image_size)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalization == "imagenet" else (CLIP_MEAN, CLIP_STD)
        self.normalization = normalization
        self.antialias = antialias
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        params = inspect.signature(blocks[0].forward).parameters
        self._n_mask_args = 2 if "causal_attention_mask" in params else 1  # transformers 4.x vs 5.x
        for k in self.layers:
            blocks[k].mlp.register_forward_hook(_keep_output)

    def _tower(self) -> nn.Module:
        # transformers 4.x nests the tower under .vision_model; 5.x puts it on the model itself
        return getattr(self.vision, "vision_model", self.vision)

    def _blocks(self) -> nn.ModuleList:
        return self._tower().encoder.layers

    @property
    def layer_names(self) -> list[str]:
        """Where each slice comes from, in the reference's naming and ours."""
        return [f"block{k + 1}.mlp (Linear-{2 * (k + 1)})" for k in self.layers]

    @property
    def tokens(self) -> int:
        cfg = self.vision.config
        return (cfg.image_size // cfg.patch_size) ** 2 + 1

    @property
    def width(self) -> int:
        return self.vision.config.hidden_size

    def preprocess(self, images: torch.Tensor, resize: str = "bilinear") -> torch.Tensor:
        """[0, 1] images → resized (``resize``: bilinear or bicubic, no crop) and normalised tower input."""
        x = images.clamp(0, 1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode=resize, align_corners=False, antialias=self.antialias)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, images: torch.Tensor, resize: str = "bilinear") -> torch.Tensor:
        tower = self._tower()
        # Run only the blocks we need: embeddings, pre-LN, then blocks 0..max(layers).
        hidden = tower.pre_layrnorm(tower.embeddings(self.preprocess(images, resize)))
        for block in tower.encoder.layers[: max(self.layers) + 1]:
            out = block(hidden, *([None] * self._n_mask_args))
            hidden = out[0] if isinstance(out, tuple) else out
        blocks = tower.encoder.layers
        feats = torch.stack([blocks[k].mlp.kept_output for k in self.layers], dim=1)
        for k in self.layers:
            blocks[k].mlp.kept_output = None  # do not hold the graph past this call
        return feats


def _keep_output(module: nn.Module, inputs, output) -> None:
    """Forward hook: keep the MLP branch's output on the module itself (so deep copies keep working)."""
    module.kept_output = output
