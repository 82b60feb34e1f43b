"""The disk a training run will need, from its models' parameter counts, checked before any step is taken.

A checkpoint holds fp32 weights and AdamW's two moments (12 bytes per parameter, measured:
docs/paper-scale.md); a final model holds the fp32 weights (4 bytes per parameter), and RUN/decoders/ copies
each fine-tuned one. During a stage ``train.keep_checkpoints`` checkpoints exist, plus the one being written;
once the stage's final model is written they are deleted unless ``train.keep_finished_checkpoints``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import NeuralDiffuserError

CHECKPOINT_BYTES_PER_PARAM = 12
MODEL_BYTES_PER_PARAM = 4
SLACK_BYTES = 64 * 2**20  # configs, RNG states, logs


def count_params(build) -> int:
    """Parameters of the model ``build()`` makes, built on the meta device (no memory, no init)."""
    import torch

    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters())


def checkpoints_written(steps: int, every: int, keep_finished: bool) -> int:
    """Checkpoints a stage of ``steps`` steps writes: every ``every`` steps before the last, and the last one
    when finished checkpoints are kept (``Trainer.run``)."""
    return (max(steps, 1) - 1) // max(every, 1) + (1 if keep_finished else 0)


def run_disk_bytes(stages: Iterable[tuple], keep: int, keep_finished: bool) -> int:
    """Bytes a run still has to write. ``stages``: (parameters, is the target's last stage[, checkpoints it
    writes]) of each stage to train; without the count, as many as are ever kept at once."""
    finals, transient, kept = 0, 0, 0
    for params, _last, *writes in stages:
        finals += params * MODEL_BYTES_PER_PARAM  # RUN/decoders/ hard-links the last stage's model
        ckpt = params * CHECKPOINT_BYTES_PER_PARAM
        at_once, stay = max(keep, 1) + 1, max(keep, 1)
        if writes:
            at_once, stay = min(at_once, writes[0]), min(stay, writes[0])
        transient = max(transient, at_once * ckpt)
        kept += stay * ckpt if keep_finished else 0
    return finals + (kept if keep_finished else transient) + SLACK_BYTES


def check_free_disk(folder: Path, need: int) -> None:
    """Refuse to start a run that cannot finish for want of disk."""
    probe = Path(folder)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise NeuralDiffuserError(
            f"not enough free disk: the run needs about {need / 2**30:.1f} GB (final models and checkpoints, "
            f"{CHECKPOINT_BYTES_PER_PARAM} bytes per parameter each), {free / 2**30:.1f} GB are free",
            where=str(folder),
            fix="free some space, choose another --out, or lower train.keep_checkpoints",
        )
