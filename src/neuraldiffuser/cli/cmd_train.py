"""Train fMRI decoders: multi-subject pretraining, then fine-tuning on the target subject.

Reads: DATASET betas, the target store.
Writes: RUN_DIR with config.yaml, logs, atomic checkpoints and final model folders.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "train"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 5)
