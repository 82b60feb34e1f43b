from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat

from ..base import Section


class TrainConfig(Section):
    """Decoder training: two stages, optimiser, schedule, checkpoints."""

    stages: list[Literal["pretrain", "finetune"]] = ["pretrain", "finetune"]
    """'pretrain' on data.pretrain_subjects then 'finetune' on data.subject; ['finetune'] alone
    trains from scratch."""
    pretrain_epochs: int = Field(150, ge=1)
    """Epochs of multi-subject pretraining."""
    finetune_epochs: int = Field(150, ge=1)
    """Epochs of fine-tuning on the target subject."""
    batch_size: int = Field(42, ge=1)
    """Global batch (all processes); in pretraining it is split equally across subjects (42 // 7 = 6 each)."""
    epoch_samples: int | None = Field(30000, ge=1)
    """Samples per epoch (the reference counts 750 · 40 = 30000); None = the stage's training trials."""
    lr: float = Field(3e-4, gt=0)
    """Peak learning rate of OneCycle."""
    weight_decay: float = Field(1e-2, ge=0)
    """AdamW decay on weight matrices and adapters (none on biases and norm scales)."""
    pct_start: float = Field(2 / 150, gt=0, lt=1)
    """Fraction of steps spent warming up."""
    div_factor: float = Field(25.0, gt=0)
    """Initial lr = lr / div_factor."""
    final_div_factor: float = Field(1000.0, gt=0)
    """Final lr = initial lr / final_div_factor."""
    prior_scale: float = Field(30.0, ge=0)
    """Weight of the prior MSE (the reference's L = 30·prior + 1·clip)."""
    clip_scale: float = Field(1.0, ge=0)
    """Weight of the contrastive (BiMixCo / SoftCLIP) loss."""
    mixco_fraction: float = Field(0.33, ge=0, le=1)
    """BiMixCo for the first int(fraction · epochs) epochs, SoftCLIP afterwards."""
    mixco_beta: float = Field(0.15, gt=0)
    """Mixup λ ~ Beta(beta, beta)."""
    mixco_prob: float = Field(0.5, ge=0, le=1)
    """Probability that a sample is mixed."""
    mixco_partner_offset: bool = True
    """Multi-subject batches: a mixed sample's partner index points into its own subject's rows of the batch.
    False reproduces the reference, whose soft labels for every subject but the first point at the first
    subject's rows (a bug: the voxels were mixed within each subject); the paper preset keeps the fix
    (docs/training.md)."""
    mixco_temperature: float = Field(0.006, gt=0)
    """BiMixCo temperature."""
    softclip_temperature: tuple[PositiveFloat, PositiveFloat] = (0.004, 0.0075)
    """SoftCLIP temperature, cosine-annealed from the first value to the second over the SoftCLIP epochs."""
    z_l1_scale: float | Literal["latent"] = "latent"
    """z L1 is divided by this; 'latent' = the VAE scaling factor recorded in targets.hdf5
    (0.18215 for SD v1.4)."""
    z_target: Literal["store", "mode"] = "store"
    """What the z decoder trains on: the store's z ('store': a posterior sample when extract.z_mode is
    'sample', the reference's z_all, which z distribution matching also uses) or the VAE posterior mode
    ('mode': the reference's z trainer; extract then also writes it as 'z_mode')."""
    z_cont_scale: float = Field(0.0, ge=0)
    """Weight of the z soft-contrastive term (0 = off; the reference uses 0.1 with a ConvNeXt
    teacher, we use g)."""
    z_cont_temperature: float = Field(0.075, gt=0)
    """Temperature of the z soft-contrastive term."""
    z_cont_layer: int = -1
    """Which g layer (position in the store) is the teacher of the z soft-contrastive term."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """accelerate mixed precision (fp16 needs a GPU)."""
    cpu: bool = False
    """Force the CPU even when a GPU is present."""
    checkpoint_every: int = Field(1000, ge=1)
    """Steps between atomic checkpoints."""
    keep_checkpoints: int = Field(2, ge=1)
    """Most recent checkpoints kept per stage and model while it trains (12 bytes per parameter each)."""
    keep_finished_checkpoints: bool = False
    """Keep a stage's checkpoints (and write one at its end) after its final model is written; off: only the
    final model stays."""
    log_every: int = Field(50, ge=1)
    """Steps between log records (console bar and tensorboard)."""
    tensorboard: bool = True
    """Log to RUN_DIR/logs with tensorboard."""
    preload_gb: float = Field(4.0, ge=0)
    """RAM (GB, per process) for holding the training betas and the model's targets; what fits is preloaded,
    smallest first, the rest read per batch."""
    auto_scale: bool = False
    """Fit batch, epoch samples and fine-tuning epochs to the target's training trials (no trial dropped, ~400
    steps), cap test repeats and held-out images to the data (training/autoscale.py; the 'small' preset)."""
    ridge: bool = True
    """Also fit the closed-form ridge baseline on the target subject."""
    ridge_alphas: list[PositiveFloat] = [1e1, 1e2, 1e3, 3e3, 1e4, 3e4, 1e5, 1e6]
    """Ridge penalties tried; the best per target on held-out training images is kept."""
    ridge_val_fraction: float = Field(0.1, gt=0, lt=1)
    """Fraction of training images held out to choose the ridge penalty."""
    ridge_cv: Literal["holdout", "loo"] = "holdout"
    """How the ridge penalty is chosen: on ridge_val_fraction of the training images ('holdout'), or by the
    exact leave-one-image-out error over all of them ('loo': for small sets, where a tenth is a handful of
    images; needs ridge_average_repeats)."""
    ridge_average_repeats: bool = True
    """Fit the ridge on the mean of each training image's repeats (as test images are decoded), not
    on single trials."""
