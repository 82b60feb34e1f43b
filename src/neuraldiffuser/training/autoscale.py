"""Fit the training schedule to the data: one subject and tens to thousands of trials (issue 17,
the ``small`` preset).

Two rules:

- **One subject** (``data.pretrain_subjects: others`` and nobody else in the dataset): there is nothing to
  pretrain on, so the run fine-tunes from scratch (``train.stages: [finetune]``), said in a
  log line. Always on.
- **``train.auto_scale``**: the batch is at most the target's training trials, every epoch draws whole passes
  (``epoch_samples`` = batches × batch ≥ trials, so no trial is dropped), and the epoch count gives about
  ``auto_steps`` optimiser steps (within [auto_min_epochs, auto_max_epochs]); test repeats are capped at what
  the test images were shown, and ``data.holdout_images`` at a fifth of the training images.

Both rules are idempotent: applied to their own result they change nothing, so ``--resume``
compares equal configs.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from ..config.schema import Config
from ..data.dataset import Dataset
from ..data.splits import training_rows

AUTO_STEPS = 400
AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 12, 300


def log(message: str) -> None:
    print(f"train: {message}", file=sys.stderr)


def adapt_to_data(config: Config, ds: Dataset, verbose: bool = True) -> Config:
    """A copy of ``config`` with the two rules applied (see the module docstring)."""
    cfg = config.model_copy(deep=True)
    notes = []
    target = ds.subject(cfg.data.subject)
    others = [s for s in ds.subjects if s != target.name]
    if "pretrain" in cfg.train.stages and cfg.data.pretrain_subjects == "others" and not others:
        cfg.train.stages = ["finetune"]
        notes.append(
            f"only one subject ({target.name}): no pretraining, "
            "fine-tuning from scratch (train.stages=[finetune])"
        )
    if getattr(cfg.train, "auto_scale", False):
        notes += _scale(cfg, target)
    if verbose:
        for note in notes:
            log(note)
    return cfg


def _scale(cfg: Config, subject) -> list[str]:
    trials = subject.trials
    test = trials.split == "test"
    shown = np.unique(trials.image[test], return_counts=True)[1]
    notes = []
    repeats = int(min(cfg.data.test_repeats, shown.max())) if len(shown) else cfg.data.test_repeats
    if repeats != cfg.data.test_repeats:
        cfg.data.test_repeats = repeats
        notes.append(f"test images were shown at most {repeats}×: data.test_repeats={repeats}")
    train_images = np.unique(trials.image[~test])
    counts = np.unique(trials.image[~test], return_counts=True)[1]
    eligible = int((counts >= cfg.data.test_repeats).sum())
    holdout = min(cfg.data.holdout_images, len(train_images) // 5, eligible)
    if holdout != cfg.data.holdout_images:
        notes.append(
            f"data.holdout_images {cfg.data.holdout_images} → {holdout} (at "
            f"most a fifth of {len(train_images)} training images, {eligible} "
            f"of them shown data.test_repeats={cfg.data.test_repeats}×)"
        )
        cfg.data.holdout_images = holdout
    n = len(training_rows(subject, cfg.data, cfg.seed))  # the target's sessions, without the held-out images
    batch = max(1, min(cfg.train.batch_size, n))
    steps_per_epoch = math.ceil(n / batch)
    epochs = int(np.clip(math.ceil(AUTO_STEPS / steps_per_epoch), AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS))
    changed = (batch, steps_per_epoch * batch, epochs) != (
        cfg.train.batch_size,
        cfg.train.epoch_samples,
        cfg.train.finetune_epochs,
    )
    cfg.train.batch_size, cfg.train.epoch_samples, cfg.train.finetune_epochs = (
        batch,
        steps_per_epoch * batch,
        epochs,
    )
    if changed:
        notes.append(
            f"{n} training trials: batch {batch}, {steps_per_epoch} steps "
            f"per epoch (every trial each epoch), {epochs} fine-tuning "
            f"epochs = {epochs * steps_per_epoch} steps (train.auto_scale)"
        )
    return notes
