from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import Section


class NeuroPictorConfig(Section):
    """NeuroPictor-style model (method notes §8): fMRI tokens, a high-level context, a
    ControlNet low-level branch.

    Voxels reach a shared fMRI token space through per-subject adapters (our substitute for the UK Biobank
    surface-map autoencoder, docs/methods.md). Infrastructure knobs (mixed precision, checkpoints, logging,
    train.cpu) come from the ``train`` section; the reconstructions per image from ``sampler.repeats``.
    """

    # ------------------------------------------------------------------ architecture
    fmri_tokens: int = Field(257, ge=1)
    """Tokens of the shared fMRI space (the reference's encoder gives 257 = 256 patches + CLS)."""
    fmri_width: int = Field(1024, ge=8)
    """Width of the fMRI tokens (1024 in the reference)."""
    adapter_width: int = Field(4096, ge=8)
    """Per-subject linear adapter: voxels → this width (MindEye2-style shared space before tokenisation)."""
    token_seed_width: int = Field(64, ge=1)
    """The shared tokeniser maps the adapter output to fmri_tokens × this, then each token to fmri_width."""
    encoder_depth: int = Field(4, ge=0)
    """Pre-norm transformer blocks over the fMRI tokens (shared by all subjects; trained in every stage)."""
    encoder_heads: int = Field(16, ge=1)
    """Attention heads of those blocks (must divide fmri_width)."""
    high_mid_tokens: int = Field(128, ge=1)
    """High-level network: token mixing fmri_tokens → this → the UNet's context length (257 → 128 → 77)."""
    low_mid_tokens: int = Field(514, ge=1)
    """Low-level network: token mixing fmri_tokens → this → the ControlNet's first-block channels
    (257 → 514 → 320)."""
    mixer_gelu: bool = False
    """A GELU between the two token-mixing Conv1d of the high- and low-level networks. The reference has none
    (two linear maps in a row: jingyanghuo/neuropictor @ 5e1584a3, cldm/cldm_fmri_surf.py); the mini preset
    keeps the GELU it was measured with (docs/methods.md)."""
    finetune_branch: bool = True
    """Fine-tuning adds a second high-level branch ending in a zero-initialised Conv1d, added residually."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout in the fMRI encoder (the reference's drop rate is unconfirmed)."""

    # ------------------------------------------------------------------ training
    pretrain_subjects: list[str] | Literal["all", "others"] = "all"
    """Multi-subject pretraining set: 'all' (the reference pretrains on subjects 1–8, the target included),
    'others', or names."""
    stages: list[Literal["pretrain", "finetune", "cfg"]] = ["pretrain", "finetune", "cfg"]
    """Training stages in order: multi-subject pretraining, single-subject fine-tuning, CFG
    adaptation (optional)."""
    pretrain_epochs: float = Field(80, gt=0)
    """Epochs of pretraining (the released checkpoint is epoch 80)."""
    finetune_epochs: float = Field(160, gt=0)
    """Epochs of fine-tuning (160 for subject 1)."""
    cfg_epochs: float = Field(20, gt=0)
    """Epochs of CFG adaptation."""
    epoch_samples: int | None = None
    """Samples per epoch (None: the stage's training trials)."""
    pretrain_batch_size: int = Field(96, ge=1)
    """Global batch of pretraining (6 GPUs × 16), split equally across subjects."""
    batch_size: int = Field(32, ge=1)
    """Global batch of fine-tuning and CFG adaptation (2 GPUs × 16)."""
    lr: float = Field(1e-4, gt=0)
    """AdamW learning rate (constant) of pretraining and fine-tuning."""
    cfg_lr: float = Field(1e-5, gt=0)
    """Learning rate of CFG adaptation."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    sem_loss_weight: float = Field(0.1, ge=0)
    """Weight of the auxiliary MSE between the high-level main branch and the caption's text
    features (fine-tuning)."""
    pretrain_sem_loss_weight: float = Field(0.0, ge=0)
    """The same weight during pretraining (0 in the reference)."""
    cfg_mask_rate: float = Field(0.05, ge=0, le=1)
    """Fraction of CFG-adaptation samples whose fMRI context is replaced by the "" text
    context (control kept)."""

    # ------------------------------------------------------------------ inference
    steps: int = Field(50, ge=1)
    """DDIM steps from pure noise (η = 0)."""
    cfg_scale: float = Field(5.0, ge=0)
    """CFG between the fMRI context and "" (the fMRI control is applied in both branches)."""
    control_scale: float = Field(1.0, ge=0)
    """Scale of the ControlNet residuals."""
    run: str | None = None
    """The trained run folder (set by `train --method neuropictor`); reconstruct loads the model from it."""

    @model_validator(mode="after")
    def _check(self) -> NeuroPictorConfig:
        if self.encoder_depth and self.fmri_width % self.encoder_heads:
            raise ValueError(f"encoder_heads {self.encoder_heads} must divide fmri_width {self.fmri_width}")
        if not self.stages:
            raise ValueError("stages must name at least one training stage")
        return self
