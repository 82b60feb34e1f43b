"""``train --method neuropictor`` and ``decode`` of a NeuroPictor run.

Run folder::

    RUN/config.yaml  RUN/summary.json  RUN/scalers/<subject>.safetensors  RUN/logs/
    RUN/<stage>/checkpoints/step-N/   RUN/<stage>/model/{fmri/, controlnet/, training.json}
    RUN/decoders/manifest.json  (method, subject, final model) + scaler.safetensors
    RUN/decoded.hdf5  (decode: the fMRI context c of every test image)
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config.schema import Config
from ...data import VoxelScaler, open_dataset
from ...errors import ConfigError, ModelLoadError
from ...targets.store import TargetStore, write_store
from ...training.manifest import read_manifest
from ...utils.io import atomic_dir, atomic_write_json

METHOD = "neuropictor"


def train_neuropictor(
    config: Config, run_dir: str | Path, targets: str | Path, accelerator=None
) -> dict[str, Any]:
    """Run every configured stage for ``config.data.subject``; returns the summary (also RUN/summary.json)."""
    from ...training.batches import TrainingData
    from ...training.runner import fit_scalers, make_accelerator, make_pool
    from ...zoo.loader import Components
    from .controlnet import NeuroPictor
    from .model import FMRIModel
    from .train import HEADS, StageTrainer, build_model, stage_specs, subject_lists

    run_dir, t0 = Path(run_dir), time.perf_counter()
    if config.data.path is None:
        raise ConfigError("no dataset", where="data.path", fix="give the dataset folder")
    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    store = TargetStore(targets)
    store.require_made_from(ds)
    target, pre_names = subject_lists(config, ds)
    acc = accelerator or make_accelerator(config, run_dir)
    if config.train.tensorboard:
        acc.init_trackers("neuropictor")
    specs = stage_specs(config, target, pre_names)
    names = sorted({n for s in specs for n in s.subjects})
    scalers = fit_scalers(config, ds, names, run_dir, acc.is_main_process)
    comp = Components(config.zoo, device=acc.device)
    unet, scheduler = comp.unet, comp.scheduler
    uncond = comp.unconditional(1).float()
    previous, summaries, last = None, [], None
    for spec in specs:
        out_dir = run_dir / spec.name
        subjects = {n: ds.subject(n).n_voxels for n in spec.subjects}
        if not (out_dir / "model" / "fmri" / "config.json").is_file():
            torch.manual_seed(config.seed + spec.code)
            if previous is None:
                model = build_model(config, comp, store, subjects, spec.extra_branch)
            else:
                fmri, _ = FMRIModel.for_stage(previous.fmri, subjects, spec.extra_branch)
                model = NeuroPictor(fmri, previous.controlnet)
            pools = [make_pool(ds, n, scalers[n], config) for n in spec.subjects]
            data = TrainingData(pools, store, HEADS, config.train.preload_gb)
            summaries.append(
                StageTrainer(
                    acc, model.to(acc.device), unet, scheduler, data, spec, config, out_dir, uncond
                ).run()
            )
        previous, last = NeuroPictor.from_pretrained(out_dir / "model"), spec.name
    summary = {
        "method": METHOD,
        "subject": target,
        "pretrain_subjects": pre_names if "pretrain" in config.neuropictor.stages else [],
        "stages": [s.name for s in specs],
        "runs": summaries,
        "seconds": time.perf_counter() - t0,
    }
    if acc.is_main_process:
        with atomic_dir(run_dir / "decoders") as tmp:
            scalers[target].save(tmp / "scaler.safetensors")
            atomic_write_json(
                tmp / "manifest.json",
                {
                    "method": METHOD,
                    "subject": target,
                    "n_voxels": ds.subject(target).n_voxels,
                    "model": f"{last}/model",
                    "targets": str(Path(targets).resolve()),
                    "targets_attrs": {k: v for k, v in store.attrs.items() if k != "created"},
                },
            )
        atomic_write_json(run_dir / "summary.json", summary)
    acc.wait_for_everyone()
    if config.train.tensorboard:
        acc.end_training()
    store.close()
    return summary


class TestVoxels:
    """The subject's scaled test voxels by image index ((V,) or (R, V) per image, per ``data.average``)."""

    def __init__(self, config: Config, run_dir: Path, subject: str):
        ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
        subj = ds.subject(subject)
        self.test = subj.test_set(config.data.test_repeats, config.data.test_order)
        x = VoxelScaler.load(Path(run_dir) / "decoders" / "scaler.safetensors").transform(
            subj.test_betas(self.test, config.data.average)
        )
        self.x = x
        self.row = {int(im): i for i, im in enumerate(self.test.images)}

    def __call__(self, image: int) -> np.ndarray:
        if int(image) not in self.row:
            raise ModelLoadError(
                f"image {image} is not a test image of this subject",
                fix="reconstruct the decoded file of this NeuroPictor run",
            )
        return self.x[self.row[int(image)]]


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """(manifest, the final NeuroPictor model on ``device`` in eval mode)."""
    from .controlnet import NeuroPictor

    manifest = read_manifest(run_dir, METHOD)
    model = (
        NeuroPictor.from_pretrained(Path(run_dir) / manifest["model"]).to(device).eval().requires_grad_(False)
    )
    return manifest, model


@torch.no_grad()
def fmri_outputs(model, subject: str, voxels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(context, control map) of one image's voxels: (V,) or (R, V) test repeats, whose
    outputs are averaged."""
    x = torch.from_numpy(np.atleast_2d(voxels)).to(device)
    context, _, cmap = model.fmri([(subject, x)])
    return context.mean(0), cmap.mean(0)


def decode_neuropictor(config: Config, run_dir: str | Path, out: str | Path) -> Path:
    """decoded.hdf5 with the fMRI context c (tokens, width) of every test image, in test order."""
    run_dir = Path(run_dir)
    manifest, model = load_run(run_dir)
    voxels = TestVoxels(config, run_dir, manifest["subject"])
    c = np.stack(
        [
            fmri_outputs(model, manifest["subject"], voxels(int(im)), "cpu")[0].numpy()
            for im in voxels.test.images
        ]
    ).astype(np.float32)
    attrs = {
        **manifest.get("targets_attrs", {}),
        "subject": manifest["subject"],
        "average": config.data.average,
        "method": METHOD,
        "source_run": str(run_dir.resolve()),
        "test_order": voxels.test.order,
        "padded": voxels.test.padded.sum(1).tolist(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    return write_store(out, voxels.test.images, {"c": c}, attrs)
