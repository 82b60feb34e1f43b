"""Build stacks of the right classes from configs with random weights, saved as ``save_pretrained`` folders.

Used by tests (tiny configs), benchmarks (SD v1.4's published architecture at a reduced resolution)
and the zoo trainer (which then trains them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
    timestep_spacing="leading",
)


def tiny_configs() -> dict[str, dict[str, Any]]:
    """The smallest stack that still has every part the method touches (SAG's mid-block
    attention included)."""
    return {
        "vae": dict(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            sample_size=16,
            layers_per_block=1,
            norm_num_groups=4,
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
        ),
        "unet": dict(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
        ),
        "text_encoder": dict(
            vocab_size=49408,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=16,
        ),
        "vision": dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=6,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=16,
        ),
    }


def sd14_configs(unet_sample_size: int = 64) -> dict[str, dict[str, Any]]:
    """SD v1.4's published UNet/VAE architecture, CLIP ViT-L/14 text and ViT-B/32 vision towers
    (random weights)."""
    return {
        "vae": dict(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            sample_size=unet_sample_size * 8,
            layers_per_block=2,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=32,
            scaling_factor=0.18215,
        ),
        "unet": dict(
            sample_size=unet_sample_size,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        ),
        "text_encoder": dict(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        ),
        "vision": dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
            hidden_act="quick_gelu",
            projection_dim=512,
        ),
    }


def build_stack(
    out_dir: str | Path,
    configs: dict[str, dict[str, Any]],
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
) -> Path:
    """Write vae/, unet/, scheduler/, tokenizer/, text_encoder/ and clip/ (a CLIPModel)
    with random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig

    from .tokenizer import write_clip_tokenizer

    out = Path(out_dir)
    torch.manual_seed(seed)
    AutoencoderKL(**configs["vae"]).save_pretrained(out / "vae")
    UNet2DConditionModel(**configs["unet"]).save_pretrained(out / "unet")
    DDIMScheduler(**SD_SCHEDULER).save_pretrained(out / "scheduler")
    text_cfg = CLIPTextConfig(**configs["text_encoder"])
    CLIPTextModel(text_cfg).save_pretrained(out / "text_encoder")
    clip_cfg = CLIPConfig(
        text_config=text_cfg.to_dict(),
        vision_config=CLIPVisionConfig(**configs["vision"]).to_dict(),
        projection_dim=configs["vision"].get("projection_dim", 512),
    )
    CLIPModel(clip_cfg).save_pretrained(out / "clip")
    if tokenizer_dir is not None:
        import shutil

        shutil.copytree(tokenizer_dir, out / "tokenizer", dirs_exist_ok=True)
    else:
        write_clip_tokenizer(out / "tokenizer")
    return out
