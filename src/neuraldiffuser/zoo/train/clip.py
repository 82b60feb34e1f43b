"""Part (b): a mini CLIP (transformers ``CLIPModel``) trained contrastively on image/caption pairs.

Each step pairs every image of the batch with one of its captions drawn at random and minimises
CLIP's symmetric cross-entropy over the batch. Images enter with ImageNet normalisation, the
normalisation the guidance encoder applies (method notes §3.3), so the vision tower is trained on the
inputs it sees when it serves g. Text enters without an attention mask, padded with the end token,
which is how SD's pipeline calls its text encoder; the UNet's context is then the text tower's last
hidden state, saved on its own as ``text_encoder/`` (a ``CLIPTextModel``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..guidance import IMAGENET_MEAN, IMAGENET_STD
from .common import RunState, make_optimizer, run, save_folder, seeded_generator
from .data import ImageCaptionData
from .settings import ClipSettings


def build_clip(s: ClipSettings, resolution: int):
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=s.text_width,
        intermediate_size=4 * s.text_width,
        num_hidden_layers=s.text_layers,
        num_attention_heads=s.text_heads,
        max_position_embeddings=s.max_length,
        projection_dim=s.projection_dim,
    )
    vision = CLIPVisionConfig(
        hidden_size=s.vision_width,
        intermediate_size=4 * s.vision_width,
        num_hidden_layers=s.vision_layers,
        num_attention_heads=s.vision_heads,
        image_size=resolution,
        patch_size=s.patch_size,
        projection_dim=s.projection_dim,
    )
    return CLIPModel(
        CLIPConfig(
            text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=s.projection_dim
        )
    )


def normalize(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] (B, 3, H, W) → the tower's input (ImageNet statistics, as GuidanceEncoder.preprocess)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images01.dtype).view(1, 3, 1, 1)
    return (images01 - mean) / std


def contrastive_loss(
    clip, pixel_values: torch.Tensor, input_ids: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE over the batch, and the in-batch image→text top-1 accuracy."""
    out = clip(input_ids=input_ids, pixel_values=pixel_values)
    logits = out.logits_per_image
    labels = torch.arange(len(logits))
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    acc = (logits.argmax(dim=1) == labels).float().mean()
    return loss, {"acc": acc.item(), "scale": clip.logit_scale.exp().item()}


def text_encoder_of(clip):
    """The CLIPModel's text tower as a stand-alone ``CLIPTextModel`` (same weights)."""
    from transformers import CLIPTextModel

    text = CLIPTextModel(clip.config.text_config)
    text.load_state_dict(clip.text_model.state_dict())
    return text.eval()


def train_clip(
    data: ImageCaptionData,
    s: ClipSettings,
    seed: int,
    out_clip: Path,
    out_text: Path,
    checkpoint: Path,
    every: int,
    save_dtype: torch.dtype,
) -> dict:
    """Train; save ``out_clip`` (CLIPModel) and ``out_text`` (its CLIPTextModel). ``data``
    must be tokenised."""
    torch.manual_seed(seed)
    clip = build_clip(s, data.resolution)
    optimizer, scheduler = make_optimizer(clip, s)
    state = RunState({"clip": clip}, optimizer, scheduler, seeded_generator(seed, "clip"))
    state.try_resume(checkpoint)
    gen = state.generator

    def step(_: int):
        idx = data.sample(gen, s.batch_size)
        return contrastive_loss(clip, normalize(data.pixels(idx)), data.random_tokens(idx, gen))

    run(state, step, s, checkpoint, every, "mini CLIP")
    save_folder(clip, out_clip, save_dtype)
    save_folder(text_encoder_of(clip), out_text, save_dtype)
    return {"steps": state.step, "seconds": round(state.elapsed, 1), "history": state.history}


def embed_images(clip, images01: torch.Tensor) -> torch.Tensor:
    """Unit-norm image embeddings (the projection CLIPModel's logits use)."""
    out = clip.visual_projection(clip.vision_model(pixel_values=normalize(images01)).pooler_output)
    return F.normalize(out, dim=-1)


def embed_texts(clip, input_ids: torch.Tensor) -> torch.Tensor:
    """Unit-norm text embeddings (the projection CLIPModel's logits use)."""
    out = clip.text_projection(clip.text_model(input_ids=input_ids).pooler_output)
    return F.normalize(out, dim=-1)
