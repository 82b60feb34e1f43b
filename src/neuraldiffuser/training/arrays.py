"""Training the neural decoders from in-memory arrays, through the same code path as ``train``.

The arrays are written once as a small dataset in our generic layout (``RUN/data``) and a target store
(``RUN/targets.hdf5``); then :func:`~neuraldiffuser.training.runner.train_decoders` runs exactly as the
``train`` command does, so the run folder it leaves is an ordinary run: ``decode``, ``reconstruct`` and
:class:`~neuraldiffuser.NeuralDiffuserPipeline` read it like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, load_config, save_config
from ..errors import DataError
from ..targets.store import TARGET_KEYS, write_store
from ..utils.validation import check_array, check_consistent_rows


def _per_subject(betas, images, subject: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
    if isinstance(betas, Mapping):
        if images is not None and not isinstance(images, Mapping):
            raise DataError("'images' must be a dict keyed like 'betas' when 'betas' is a dict of subjects")
        return dict(betas), {s: (images or {}).get(s) for s in betas}
    return {subject: betas}, {subject: images}


def check_training_arrays(betas, targets: Mapping[str, Any], images=None, subject: str = "subj01"):
    """Validated (betas per subject float32 (n, V), images per subject int64 (n,), targets
    float32 (N, ...))."""
    bad = sorted(set(targets) - set(TARGET_KEYS))
    if bad or not targets:
        raise DataError(f"'targets' keys must be among {', '.join(TARGET_KEYS)}, got {sorted(targets)}")
    values = {k: check_array(v, f"targets['{k}']", min_rows=2) for k, v in targets.items()}
    n_images = check_consistent_rows(**{f"targets['{k}']": v for k, v in values.items()})
    by_subject, image_rows = _per_subject(betas, images, subject)
    if subject not in by_subject:
        raise DataError(
            f"'subject' {subject!r} is not among the subjects of 'betas' ({', '.join(by_subject)})"
        )
    xs, ims = {}, {}
    for name, x in by_subject.items():
        xs[name] = check_array(x, f"betas['{name}']" if len(by_subject) > 1 else "betas", ndim=2, min_rows=4)
        im = image_rows[name]
        if im is None:
            if len(xs[name]) != n_images:
                raise DataError(
                    f"'betas' has {len(xs[name])} rows and the targets {n_images}: give 'images' (the image "
                    "index of each betas row) when they are not one row per image in order"
                )
            im = np.arange(n_images)
        ims[name] = check_array(
            im,
            f"images['{name}']" if len(by_subject) > 1 else "images",
            ndim=1,
            dtype=np.int64,
            integer=True,
            value_range=(0, n_images - 1),
        )
        check_consistent_rows(betas=xs[name], images=ims[name])
    return xs, ims, values


def train_from_arrays(
    betas: np.ndarray | Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    out: str | Path,
    *,
    images: np.ndarray | Mapping[str, np.ndarray] | None = None,
    subject: str = "subj01",
    config: Config | None = None,
    stimuli: np.ndarray | None = None,
    target_attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Train the neural decoders (and the ridge baseline) on arrays; returns the run folder ``out``.

    - ``betas``: (n_trials, n_voxels) float, one subject's responses; or {subject: array} for several
      subjects, in which case the others pretrain and ``subject`` is fine-tuned on (two-stage scheme).
    - ``targets``: {'c': (N, tokens, width), 'z': (N, C, h, w), 'g': (N, L, tokens, width)} float, the
      targets of the N stimulus images (any subset of c, z, g; shapes of the zoo you reconstruct with).
    - ``images``: (n_trials,) int, the stimulus index in [0, N) of each betas row (default: row i is image i).
    - ``config``: default the ``mini`` preset; ``data.path`` and ``data.subject`` are set here.
    - ``stimuli``: optional (N, H, W, 3) uint8 images, kept in ``out/data`` for the record.
    - ``target_attrs``: attributes of the target store, e.g. ``{'latent_scale': 0.18215}``
      when ``z`` is scaled.
    - ``overwrite``: replace a non-empty ``out`` (otherwise that is an error).
    """
    from ..data.layout import SubjectArrays, write_generic
    from .runner import check_run_dir, train_decoders

    xs, ims, values = check_training_arrays(betas, targets, images, subject)
    out = Path(out)
    if overwrite and out.is_dir():
        import shutil

        shutil.rmtree(out)
    check_run_dir(out, resume=False)
    n_images = len(next(iter(values.values())))
    if stimuli is None:
        stimuli = np.zeros((n_images, 1, 1, 3), np.uint8)
    stimuli = check_array(
        stimuli, "stimuli", ndim=4, shape=(None, None, 3), dtype=np.uint8, value_range=(0, 255)
    )
    check_consistent_rows(stimuli=stimuli, **{f"targets['{k}']": v for k, v in values.items()})
    arrays = {
        name: SubjectArrays(x, ims[name], np.ones(len(x), np.int32), np.array(["train"] * len(x)))
        for name, x in xs.items()
    }
    data_dir = write_generic(
        out / "data",
        stimuli,
        {i: [""] for i in range(n_images)},
        arrays,
        meta={"source": "train_from_arrays"},
    )
    store = write_store(out / "targets.hdf5", np.arange(n_images), values, attrs=dict(target_attrs or {}))
    pre = [s for s in xs if s != subject]
    overrides: dict[str, Any] = {
        "data": {
            "path": str(data_dir.resolve()),
            "subject": subject,
            "layout": "generic",
            "pretrain_subjects": pre or "others",
        }
    }
    if not pre:
        overrides["train"] = {"stages": ["finetune"]}  # one subject: nothing to pretrain on
    from ..config.load import deep_merge

    base = (
        config.model_dump(mode="json") if config is not None else load_config("mini").model_dump(mode="json")
    )
    cfg = Config.model_validate(deep_merge(base, overrides))
    save_config(cfg, out)
    train_decoders(cfg, out, store)
    return out
