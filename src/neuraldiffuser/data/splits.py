"""Which of a subject's trials train the decoders, and which images are held out to validate sampler settings.

Every training code path (the decoders, the ridge baseline, MindDiffuser, NeuroPictor-style) takes its rows
from here, so ``data.sessions`` and ``data.holdout_images`` mean the same thing for every method.
"""

from __future__ import annotations

import numpy as np

from .dataset import SubjectData, TestSet


def holdout_set(subject: SubjectData, data, seed: int) -> TestSet | None:
    """The target subject's held-out images with their trials (None when ``data.holdout_images`` is 0 or for
    another subject). They are drawn from all of its sessions, with the run's ``seed``."""
    if subject.name != data.subject or not data.holdout_images:
        return None
    return subject.holdout_set(data.holdout_images, seed, data.test_repeats)


def training_rows(subject: SubjectData, data, seed: int) -> np.ndarray:
    """Betas rows a method trains on: every training trial of a pretraining subject; for the target subject,
    its first ``data.sessions`` sessions without the trials of its held-out images."""
    if subject.name != data.subject:
        return subject.train_rows()
    held = holdout_set(subject, data, seed)
    return subject.train_rows(data.sessions, exclude_images=None if held is None else held.images)
