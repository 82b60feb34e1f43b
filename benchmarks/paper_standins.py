"""Stand-ins of the paper's models and data: the exact architectures with random weights, and NSD's shapes.

* Models, from the published configs (``neuraldiffuser.zoo.build.sd14_configs``): SD v1.4's UNet (859.5 M
  parameters) and VAE (83.7 M), DDIM scheduler and CLIP ViT-L/14 text encoder, written as the hub repository
  ``CompVis/stable-diffusion-v1-4``; CLIP ViT-B/32 (``openai/clip-vit-base-patch32``) and ViT-L/14
  (``openai/clip-vit-large-patch14``) as full ``CLIPModel`` repositories. All are laid out as a Hugging Face
  cache (``models--org--name/refs/main`` + ``snapshots/<commit>/``), so the ``paper`` preset's hub ids resolve
  with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE`` pointing at it, exactly as on a compute node with a
  pre-filled cache. The tokenizers are the real CLIP BPE (``zoo.tokenizer.write_clip_tokenizer``, built from
  the vocabulary that ships in open_clip_torch).
* ``unet_sample_size`` is the only departure: SD v1.4 says 64 (512 px); a CPU run passes 8 or 16 (64 or 128
  px). The weights do not depend on it.
* Data: NSD in MindEye2's layout with the real voxel counts of each subject, 224 px images and few trials.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SD14 = "CompVis/stable-diffusion-v1-4"
CLIP_B32 = "openai/clip-vit-base-patch32"
CLIP_L14 = "openai/clip-vit-large-patch14"
COMMIT = "0" * 39 + "1"  # a fake snapshot id: what refs/main points to
# NSD's voxel counts in MindEye2's nsdgeneral betas files (subjects 1-8)
NSD_VOXELS = {
    "subj01": 15724,
    "subj02": 14278,
    "subj03": 15226,
    "subj04": 13153,
    "subj05": 13039,
    "subj06": 17907,
    "subj07": 12682,
    "subj08": 14386,
}
L14_VISION = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    hidden_act="quick_gelu",
    projection_dim=768,
)
B32_TEXT = dict(
    vocab_size=49408,
    hidden_size=512,
    intermediate_size=2048,
    num_hidden_layers=12,
    num_attention_heads=8,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=512,
)


def use_cache(cache: str | Path) -> None:
    """Point huggingface_hub at ``cache`` offline; must run before huggingface_hub is imported."""
    import sys

    if "huggingface_hub" in sys.modules:
        raise RuntimeError("set the cache before huggingface_hub is imported (call use_cache first)")
    os.environ["HF_HUB_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def snapshot(cache: Path, repo: str) -> Path:
    base = Path(cache) / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(COMMIT)
    return base / "snapshots" / COMMIT


def _clip_model(out: Path, text: dict, vision: dict, projection_dim: int, tokenizer: Path) -> int:
    import shutil

    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    model = CLIPModel(cfg)
    model.save_pretrained(out)
    shutil.copytree(tokenizer, out, dirs_exist_ok=True)
    return sum(p.numel() for p in model.parameters())


def build_models(
    cache: str | Path, unet_sample_size: int, seed: int = 0, evaluation: bool = True, tiny: bool = False
) -> dict:
    """Write the stand-ins into the cache (skipped when already there for this sample size);
    returns parameter counts.

    ``tiny`` writes the test suite's tiny stack under the same hub ids instead (a smoke test of the callers).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from neuraldiffuser.zoo.build import SD_SCHEDULER, sd14_configs, tiny_configs
    from neuraldiffuser.zoo.tokenizer import write_clip_tokenizer

    cache = Path(cache)
    stamp = cache / f"standins-{'tiny' if tiny else unet_sample_size}-{int(evaluation)}.json"
    if stamp.is_file():
        return json.loads(stamp.read_text())
    cfg = tiny_configs() if tiny else sd14_configs(unet_sample_size=unet_sample_size)
    b32_text = (
        {**cfg["text_encoder"], "projection_dim": cfg["vision"]["projection_dim"]} if tiny else B32_TEXT
    )
    torch.manual_seed(seed)
    counts: dict[str, int] = {}
    sd = snapshot(cache, SD14)
    tok = write_clip_tokenizer(cache / "_tokenizer")
    import shutil

    shutil.copytree(tok, sd / "tokenizer", dirs_exist_ok=True)
    for name, build in (
        ("unet", lambda: UNet2DConditionModel(**cfg["unet"])),
        ("vae", lambda: AutoencoderKL(**cfg["vae"])),
        ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))),
    ):
        model = build()
        counts[name] = sum(p.numel() for p in model.parameters())
        model.save_pretrained(sd / name)
        del model
    DDIMScheduler(**SD_SCHEDULER).save_pretrained(sd / "scheduler")
    (sd / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": "0.2.2",
                "vae": ["diffusers", "AutoencoderKL"],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "scheduler": ["diffusers", "DDIMScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
            },
            indent=2,
        )
    )
    counts["clip_b32"] = _clip_model(
        snapshot(cache, CLIP_B32), b32_text, cfg["vision"], cfg["vision"]["projection_dim"], tok
    )
    if evaluation and not tiny:
        # ViT-L/14's text tower is SD v1.4's text encoder
        counts["clip_l14"] = _clip_model(snapshot(cache, CLIP_L14), cfg["text_encoder"], L14_VISION, 768, tok)
    counts["unet_sample_size"] = unet_sample_size
    stamp.write_text(json.dumps(counts))
    return counts


def smooth_images(n: int, side: int, seed: int) -> np.ndarray:
    """uint8 (n, side, side, 3): low-frequency colour fields, so the VAE and CLIP see image-like inputs."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(
        torch.rand(n, 3, 6, 6, generator=g), size=(side, side), mode="bicubic", align_corners=False
    )
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def build_nsd(
    root: str | Path,
    subjects: list[str],
    train_images: int = 6,
    test_images: int = 4,
    sessions: int = 3,
    seed: int = 0,
    voxels: dict[str, int] | None = None,
) -> Path:
    """MindEye2's layout with real voxel counts: each subject sees its own ``train_images`` twice and the
    shared ``test_images`` three times over ``sessions`` sessions; betas are standard normal (already
    z-scored, as MindEye2's)."""
    from neuraldiffuser.data.layout import SubjectArrays
    from neuraldiffuser.data.nsd import write_mindeye2

    root = Path(root)
    if (root / "done.json").is_file():
        return root
    rng = np.random.default_rng(seed)
    n_images = train_images * len(subjects) + test_images
    test = np.arange(n_images - test_images, n_images)
    images = smooth_images(n_images, 224, seed)
    words = [
        "red",
        "green",
        "blue",
        "large",
        "small",
        "dog",
        "cat",
        "street",
        "kitchen",
        "table",
        "person",
        "bus",
    ]
    captions = {i: [" ".join(rng.choice(words, 6)) for _ in range(5)] for i in range(n_images)}
    arrays = {}
    for s_idx, name in enumerate(subjects):
        own = np.arange(s_idx * train_images, (s_idx + 1) * train_images)
        image, session = [], []
        for se in range(1, sessions + 1):
            rows = list(test) + (list(own) if se < sessions else [])
            image += rows
            session += [se] * len(rows)
        image = np.array(image)
        split = np.where(np.isin(image, test), "test", "train")
        n_vox = (voxels or NSD_VOXELS)[name]
        betas = rng.standard_normal((len(image), n_vox)).astype(np.float32)
        roi = rng.integers(0, 4, n_vox)
        arrays[name] = SubjectArrays(
            betas, image, np.array(session), split, roi=roi, roi_names=["V1", "V2", "V3", "hV4"]
        )
    write_mindeye2(root, images, captions, arrays, mtime=0.0)
    (root / "done.json").write_text(json.dumps({"subjects": subjects, "images": n_images}))
    return root
