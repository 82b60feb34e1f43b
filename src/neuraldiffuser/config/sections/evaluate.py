from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Section


class EvaluateConfig(Section):
    """Evaluation metrics (MindEye2's protocol plus embedded-scale ones), their backbones, and the report."""

    metrics: list[str] = ["all"]
    """Metric names (see docs/evaluation.md) or the groups 'all', 'paper', 'embedded'. A metric whose
    weights are absent is reported as unavailable with the reason, never computed on random weights."""
    antialias: bool = False
    """Antialiasing of tensor resizes. False reproduces torchvision 0.16 (MindEye2's pinned version),
    whose default was no antialiasing; it matters only when images are shrunk (e.g. 512 → 256)."""
    table_repeat: int = Field(0, ge=0)
    """Repeat whose reconstructions give the 'repeat<k>' row (one reconstruction per image, as published
    tables score). A 'mean' row averages each metric over all repeats."""
    batch_size: int = Field(16, ge=1)
    """Images per batch for loading and feature extraction."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    torch_home: str | None = None
    """Folder whose hub/checkpoints/ holds torchvision and SwAV weights (None: $TORCH_HOME
    or ~/.cache/torch)."""
    clip_model: str = "openai/clip-vit-large-patch14"
    """CLIP ViT-L/14 for the CLIP metric: a Hugging Face id (read from the local cache only) or a folder."""
    mini_clip: str | None = None
    """Embedded-scale CLIP (a transformers CLIPModel folder). None: the clip/ folder of zoo.path."""
    brain_encoder: str = "auto"
    """Encoding model for brain correlation: 'auto' (the simulator's noiseless model when the dataset has
    simulator/), 'none', or 'package.module:factory' with factory(dataset_root, subject) ->
    encoder (GNet for NSD)."""
    brain_image_size: int | None = None
    """Side the encoder receives images at (LANCZOS). None: the encoder's image_size, else
    the stimulus size."""
    retrieval_key: Literal["c", "g", "z"] = "g"
    """Target used for retrieval when --decoded and --targets are given (brain-decoded vs
    stimulus features)."""
    retrieval_draws: int = Field(30, ge=1)
    """Random subsets drawn for retrieval (MindEye2: 30)."""
    retrieval_subset: int = Field(300, ge=2)
    """Images per retrieval subset (MindEye2: 300; all images when fewer)."""
    cache: bool = True
    """Cache stimulus features and finished folders so a rerun resumes."""
    cache_dir: str | None = None
    """Where the caches live (None: <out>/.cache)."""
