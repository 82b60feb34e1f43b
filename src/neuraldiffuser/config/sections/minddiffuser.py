from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import Section


class MindDiffuserConfig(Section):
    """MindDiffuser (method notes §7): voxel-selection ridge decoders, img2img, back-propagation refinement.

    The defaults are the released code's values; docs/methods.md says where the code is inconsistent and which
    value was taken. The number of reconstructions per image is ``sampler.repeats`` (shared by every method).
    """

    # ------------------------------------------------------------------ decoders
    text_max_length: int = Field(15, ge=2)
    """Tokens of c: captions are encoded with max_length 15 instead of 77; the first (start)
    token is constant."""
    captions: int | None = Field(5, ge=1)
    """c is the mean over each image's first N captions (the reference: 5, its
    Semantic_feature_extraction.py); None averages all of them."""
    alpha: float = Field(0.15, ge=0.0)
    """L2 penalty of every voxel-selection ridge (FastL2LiR; the bias column is penalised too, as there)."""
    n_feat_c: int = Field(125, ge=1)
    """Voxels kept per c output (the value loaded at reconstruction; the training script says 450)."""
    n_feat_z: int = Field(4000, ge=1)
    """Voxels kept per z output (reconstruction-time value; the training script says 3000)."""
    n_feat_g: list[int] = [350, 350, 350, 250, 250, 250]
    """Voxels kept per g output, one value per guidance layer (the older driver's list for Linear-2…12)."""
    remain_rate: float = Field(25.0, gt=0.0, le=100.0)
    """Percent of each g layer's features that are decoded and enter the stage-2 loss (the most
    predictable ones)."""
    mask_folds: int = Field(5, ge=2)
    """K of the K-fold (unshuffled) cross-validation on training images that scores each g
    feature's predictability."""
    average_train_repeats: bool = True
    """Fit on one row per training image (its repeats averaged), as the reference's stimulus arrays imply;
    False fits trials."""
    test_zscore: Literal["train", "test"] = "train"
    """Test voxels z-scored with the training statistics, or with the test set's own ('test', the
    released code's leak)."""
    solve_memory_mb: int = Field(1024, ge=16)
    """Memory budget of one batch of per-output solves: outputs are solved in chunks of Gram
    blocks that fit in it."""
    device: str = "auto"
    """Where the ridge fits run: 'auto' (CUDA when available), 'cpu' or 'cuda[:n]'."""

    # ------------------------------------------------------------------ stage 1: img2img
    steps: int = Field(50, ge=2)
    """DDIM schedule length (uniform, 'leading' spacing: 981, 961, …, 1 for 50 steps)."""
    noise_index: int = Field(37, ge=0)
    """z is noised to the schedule's timestep with this (ascending) index: 37 of 50 → t = 741."""
    denoise_steps: int = Field(35, ge=1)
    """Then this many DDIM steps are run, the last ones of the schedule (35 → 681, 661, …, 1); not
    tied to noise_index."""
    cfg_scale: float = Field(5.0, ge=0.0)
    """Classifier-free guidance scale (the unconditional context is "" encoded at text_max_length tokens)."""

    # ------------------------------------------------------------------ stage 2: refinement
    optimise: Literal["z", "c+z"] = "z"
    """Variables updated by back-propagation: z (current code) or c and z (older code and the
    paper's algorithm)."""
    iterations: int = Field(300, ge=0)
    """Adam iterations; each one runs the whole sampler, the VAE decoder and the guidance tower with
    gradients. 0 = stage 1 only."""
    lr: float = Field(0.01, gt=0.0)
    """Adam learning rate."""
    gamma: float = Field(0.999, gt=0.0, le=1.0)
    """ExponentialLR decay, stepped once per iteration."""
    refine_noise: Literal["fresh", "fixed"] = "fresh"
    """Img2img noise in each iteration: a fresh draw every time (the reference) or one draw per repeat reused,
    which makes the refined objective deterministic (smoother with few iterations)."""
    guidance_resize: Literal["bicubic", "bilinear"] = "bicubic"
    """Filter that brings the generated image to the guidance tower's input in stage 2 (the reference:
    torchvision bicubic; antialiasing follows zoo.guidance_antialias)."""
    returned_image: Literal["last_saved", "fresh"] = "last_saved"
    """The image returned after refinement: the one generated in the last iteration whose index is a multiple
    of 10 (the reference saves every 10th iteration's image and nothing after the loop), or 'fresh': stage 1
    run once more from the refined variables."""
    layer_boosts: list[float] = [1.5, 1.2, 1.0, 1.0, 1.0, 1.0]
    """Multiplied onto the inverse-norm layer weights of the masked g loss, one per guidance layer."""
    gradient_checkpointing: bool = True
    """Keep only each step's input latent and recompute the step in the backward pass (memory
    O(steps · latent))."""

    @model_validator(mode="after")
    def _check(self) -> MindDiffuserConfig:
        if self.noise_index >= self.steps:
            raise ValueError(f"noise_index {self.noise_index} must be below steps {self.steps}")
        if self.denoise_steps > self.steps:
            raise ValueError(f"denoise_steps {self.denoise_steps} exceeds steps {self.steps}")
        if not self.n_feat_g or not self.layer_boosts:
            raise ValueError("n_feat_g and layer_boosts need one value per guidance layer")
        return self
