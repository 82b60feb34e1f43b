from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Section


class DataConfig(Section):
    """Which dataset, which subjects, and how test repeats and voxel scaling are handled."""

    path: str | None = None
    """Dataset folder, generic layout or MindEye2's NSD layout."""
    layout: Literal["auto", "generic", "mindeye2"] = "auto"
    """How to read the folder: "auto" detects it (docs/dataset-layout.md); "generic" or
    "mindeye2" force one."""
    subject: str = "subj01"
    """Target subject: fine-tuned on, decoded and reconstructed."""
    pretrain_subjects: list[str] | Literal["others"] = "others"
    """Subjects for multi-subject pretraining; 'others' = every subject but the target."""
    sessions: int | None = Field(None, ge=1)
    """Number of the target subject's sessions used for fine-tuning (None = all)."""
    holdout_images: int = Field(0, ge=0)
    """Training images of the target subject left out of training (every trial of them), drawn at random
    (seed) among images shown test_repeats times: validation data at test SNR for choosing sampler settings
    (`decode --holdout`; benchmarks/kappa_validation.py). 0 = none."""
    zscore: Literal["train", "none"] = "train"
    """Voxel z-scoring with statistics from training trials only ('none' for MindEye2's renormed betas)."""
    test_order: Literal["first_seen", "sorted"] = "first_seen"
    """Test-image order: first appearance in the subject's trials (NeuralDiffuser) or ascending
    index (MindEye2)."""
    test_repeats: int = Field(3, ge=1)
    """Repeats gathered per test image; images with fewer are padded by repetition as the reference does."""
    average: Literal["voxels", "outputs"] = "voxels"
    """Test repeats: average voxels before decoding (NeuralDiffuser) or decode each and average
    outputs (MindEye2)."""
    captions: str | None = None
    """Captions JSON (MindEye2 layout only; default: captions.json in the dataset folder)."""
