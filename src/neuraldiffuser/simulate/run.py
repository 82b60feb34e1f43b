"""Simulate a whole dataset: scenes → subjects' encoding models → design → betas → both layouts.

``simulate_dataset(out, SimulateConfig)`` is what ``neuraldiffuser simulate`` runs. Random streams are
derived from (seed, purpose, subject), so every file is a deterministic function of the seed and the
preset, and subjects are independent of each other. Subjects are written one at a time (memory stays
at one subject) and recorded in ``simulator/progress.json``: an interrupted run resumes where it
stopped; ``dataset.json`` is written last, so a half-written folder never opens as a dataset.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..utils.io import atomic_write_json
from ..utils.progress import progress_bar
from .encoding import FIELD_DEG, EncodingModel
from .features import FilterBank, channel_names
from .presets import NOISE_CEILING, ROI_NAMES, Preset, resolve_preset
from .scenes import caption_records, render, sample_records
from .semantic import ATTRIBUTES
from .subjects import calibrate, draw_subject

VERSION = 1
SEED_SUBJECT, SEED_DESIGN, SEED_NOISE = 1, 2, 3
TAR_MTIME = 0.0  # fixed tar timestamps: byte-identical shards


def _batched(fn, items: np.ndarray, out: np.ndarray, label: str, chunk: int) -> np.ndarray:
    with progress_bar(label, len(items)) as bar:
        for start in range(0, len(items), chunk):
            out[start : start + chunk] = fn(items[start : start + chunk])
            bar.advance(len(out[start : start + chunk]))
    return out


def _subject(
    index: int, preset: Preset, seed: int, noise_scale: float, images, semantic, ventral, bank, channel_norm
):
    """Draw, calibrate and measure one subject: (EncodingModel, SubjectArrays)."""
    from ..data.layout import SubjectArrays
    from .design import make_design, measure

    name = f"subj{index + 1:02d}"
    rng = np.random.default_rng([seed, SEED_SUBJECT, index])
    n_vox = int(rng.integers(preset.voxels[0], preset.voxels[1] + 1))
    params = draw_subject(rng, n_vox)
    noise_factor = float(rng.uniform(0.85, 1.15)) * noise_scale
    meta = {
        "subject": name,
        "resolution": preset.image_size,
        "field_deg": FIELD_DEG,
        "roi_names": list(ROI_NAMES),
        "noise_factor": noise_factor,
        "version": VERSION,
    }
    model = EncodingModel(params, meta, ventral, channel_norm)
    test_ids = np.arange(preset.test_images)
    start = preset.test_images + index * preset.train_images
    seen = np.concatenate([test_ids, np.arange(start, start + preset.train_images)])
    ret = _batched(
        lambda x: model.retinotopic_drive(bank.maps(x)),
        images[seen],
        np.empty((len(seen), n_vox), np.float32),
        f"{name} pRF responses",
        128,
    )
    sem = model.semantic_drive(semantic[seen])
    calibrate(params, ret, sem, rng, noise_factor)
    mu = model.combine(ret, sem)
    del ret, sem
    design = make_design(
        np.random.default_rng([seed, SEED_DESIGN, index]), preset, test_ids, seen[preset.test_images :]
    )
    betas = measure(
        np.random.default_rng([seed, SEED_NOISE, index]),
        mu,
        design,
        {int(i): r for r, i in enumerate(seen)},
        params["noise_sd"],
    )
    return model, SubjectArrays(
        betas, design.image, design.session, design.split, roi=params["roi"], roi_names=list(ROI_NAMES)
    )


def _zscored(arrays):
    """MindEye2's ``_renorm`` betas: z-scored per voxel with training-trial statistics."""
    train = arrays.split == "train"
    mean = arrays.betas[train].mean(axis=0, dtype=np.float64)
    std = arrays.betas[train].std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-8, std, 1.0)
    return ((arrays.betas - mean) / std).astype(np.float32), mean.astype(np.float32), std.astype(np.float32)


class _Output:
    """The folders being written (generic and/or MindEye2) and the resume bookkeeping."""

    def __init__(self, out: Path, layout: str, fingerprint: dict):
        self.generic = out if layout in ("generic", "both") else None
        self.me2 = (out / "mindeye2" if layout == "both" else out) if layout in ("mindeye2", "both") else None
        self.roots = [r for r in (self.generic, self.me2) if r is not None]
        self.progress = out / "simulator" / "progress.json"
        self.fingerprint = fingerprint
        self.done: list[str] = []
        for root in self.roots:
            meta = root / "simulator" / "simulator.json"
            if meta.is_file() and json.loads(meta.read_text()).get("fingerprint") != fingerprint:
                raise ConfigError(
                    "this folder holds a different simulated dataset",
                    where=str(root),
                    fix="choose another --out or delete the folder",
                )
        if self.progress.is_file():
            state = json.loads(self.progress.read_text())
            if state.get("fingerprint") == fingerprint:
                self.done = state["done"]

    def complete(self) -> bool:
        return (
            not self.progress.is_file()
            and all((r / "simulator" / "simulator.json").is_file() for r in self.roots)
            and (self.generic is None or (self.generic / "dataset.json").is_file())
        )

    def mark(self, name: str | None) -> None:
        if name is not None:
            self.done.append(name)
        atomic_write_json(self.progress, {"fingerprint": self.fingerprint, "done": self.done})


def _write_shared(output: _Output, images, captions, records, channel_norm, meta) -> None:
    from safetensors.numpy import save_file

    from ..data.layout import write_images_h5
    from ..data.nsd import IMAGES_FILE
    from ..utils.io import atomic_save
    from .ventral import WEIGHTS

    caps = {str(k): list(v) for k, v in captions.items()}
    if output.generic is not None:
        write_images_h5(output.generic / "images.hdf5", images)
        atomic_write_json(output.generic / "captions.json", caps)
    if output.me2 is not None:
        output.me2.mkdir(parents=True, exist_ok=True)
        write_images_h5(output.me2 / IMAGES_FILE, images, channels_first=True, dtype=np.float16)
        atomic_write_json(output.me2 / "captions.json", caps)
        if not output.done:  # a fresh run: no stale ROI entries (a resumed run keeps its finished subjects')
            (output.me2 / "voxel_rois.hdf5").unlink(missing_ok=True)
    for root in output.roots:
        sim = root / "simulator"
        (sim / "ventral").mkdir(parents=True, exist_ok=True)
        atomic_write_json(sim / "scenes.json", records, indent=None)
        atomic_save(
            sim / "filterbank.safetensors", lambda p: save_file({"channel_norm": channel_norm}, str(p))
        )
        for f in ("config.json", "model.safetensors"):
            atomic_save(sim / "ventral" / f, lambda p, f=f: shutil.copyfile(WEIGHTS / f, p))


def _write_subject(output: _Output, index: int, model: EncodingModel, arrays) -> None:
    from ..data.dataset import TrialTable
    from ..data.layout import write_betas_h5, write_trials_csv
    from ..data.nsd import write_mindeye2_subject

    name = model.meta["subject"]
    if output.generic is not None:
        sdir = output.generic / "subjects" / name
        sdir.mkdir(parents=True, exist_ok=True)
        write_betas_h5(sdir / "betas.hdf5", arrays.betas, roi=arrays.roi, roi_names=arrays.roi_names)
        write_trials_csv(
            sdir / "trials.csv",
            TrialTable.build(np.arange(len(arrays.betas)), arrays.image, arrays.session, arrays.split),
        )
        model.save(output.generic / "simulator")
    if output.me2 is not None:
        z, mean, std = _zscored(arrays)
        write_mindeye2_subject(output.me2, name, index + 1, replace(arrays, betas=z), mtime=TAR_MTIME)
        EncodingModel(model.params, model.meta, model.ventral, model.channel_norm, units=(mean, std)).save(
            output.me2 / "simulator"
        )


def estimated_bytes(preset: Preset, layout: str, subjects: int, betas_itemsize: int = 4) -> int:
    """What writing the dataset takes on disk: images (uint8, and float16 for MindEye2), and per subject its
    betas (generic: ``betas_itemsize`` bytes, MindEye2: float32), encoding model (~400 B a voxel) and, for
    MindEye2, its WebDataset trials (~13 kB each with their context rows)."""
    generic, me2 = int(layout in ("generic", "both")), int(layout in ("mindeye2", "both"))
    n_images = preset.test_images + preset.subjects * preset.train_images
    images = n_images * preset.image_size**2 * 3 * (generic + 2 * me2)
    trials = (
        preset.train_images * sum((k + 1) * p for k, p in enumerate(preset.train_repeat_probs))
        + preset.test_images * preset.test_repeats
    )
    voxels = sum(preset.voxels) / 2
    per_subject = (
        trials * voxels * (betas_itemsize * generic + 4 * me2)
        + voxels * 400 * (generic + me2)
        + trials * 13_000 * me2
    )
    return int(images + subjects * per_subject)


def simulate_dataset(out: str | Path, cfg) -> str:
    """Simulate and write a dataset as configured by ``cfg`` (a ``SimulateConfig``);
    returns a summary line."""
    from ..data.layout import LAYOUT_NAME
    from .ventral import Ventral

    t0 = time.perf_counter()
    preset = resolve_preset(cfg)
    fingerprint = json.loads(
        json.dumps(
            {
                "version": VERSION,
                "seed": cfg.seed,
                "noise_scale": cfg.noise_scale,
                "betas_dtype": cfg.betas_dtype,
                **asdict(preset),
            }
        )
    )
    output = _Output(Path(out), cfg.layout, fingerprint)
    if output.complete():
        return f"{out} already holds this simulation (preset {preset.name}, seed {cfg.seed}); nothing to do"
    from ..utils.storage import require_free_space

    require_free_space(
        out,
        estimated_bytes(
            preset, cfg.layout, preset.subjects - len(output.done), np.dtype(cfg.betas_dtype).itemsize
        ),
        "the simulated dataset (estimated)",
    )
    output.mark(None)
    n_images = preset.test_images + preset.subjects * preset.train_images
    records = sample_records(n_images, cfg.seed)
    images = _batched(
        lambda r: render(list(r), preset.image_size),
        np.array(records, dtype=object),
        np.empty((n_images, preset.image_size, preset.image_size, 3), np.uint8),
        "render scenes",
        1024,
    )
    captions = dict(enumerate(caption_records(records, cfg.seed)))
    ventral = Ventral()
    semantic = _batched(
        ventral.semantic, images, np.empty((n_images, len(ATTRIBUTES)), np.float32), "ventral network", 512
    )
    bank = FilterBank(preset.image_size)
    channel_norm = (
        bank.maps(images[: min(512, n_images)]).mean(axis=(0, 2, 3)).astype(np.float32)
    )  # test images first: shared by all
    names = [f"subj{s + 1:02d}" for s in range(preset.subjects)]
    meta = {
        "generator": "neuraldiffuser.simulate",
        "version": VERSION,
        "fingerprint": fingerprint,
        "preset": preset.name,
        "seed": cfg.seed,
        "resolution": preset.image_size,
        "field_deg": FIELD_DEG,
        "roi_names": list(ROI_NAMES),
        "noise_ceiling_median": NOISE_CEILING,
        "attributes": ATTRIBUTES,
        "channels": channel_names(),
        "subjects": names,
        "test_images": list(range(preset.test_images)),
    }
    _write_shared(output, images, captions, records, channel_norm, meta)
    trials, voxels = 0, []
    for s, name in enumerate(names):
        if name in output.done:
            continue
        model, arrays = _subject(
            s, preset, cfg.seed, cfg.noise_scale, images, semantic, ventral, bank, channel_norm
        )
        if cfg.betas_dtype != "float32":
            arrays = replace(arrays, betas=arrays.betas.astype(cfg.betas_dtype))
        _write_subject(output, s, model, arrays)
        trials, voxels = trials + len(arrays.betas), voxels + [f"{name}:{arrays.betas.shape[1]}"]
        output.mark(name)
    for root in output.roots:
        atomic_write_json(root / "simulator" / "simulator.json", meta)
    if output.generic is not None:
        doc = {
            "layout": LAYOUT_NAME,
            "version": 1,
            "subjects": names,
            "n_images": n_images,
            "image_size": [preset.image_size] * 2,
            "simulator": "simulator/simulator.json",
            "preset": preset.name,
            "seed": cfg.seed,
        }
        atomic_write_json(output.generic / "dataset.json", doc)
    output.progress.unlink()
    where = " and ".join(str(r) for r in output.roots)
    return (
        f"simulated {preset.name}: {len(names)} subjects ({', '.join(voxels) or 'resumed'} voxels), "
        f"{n_images} images, {trials} new trials in {time.perf_counter() - t0:.1f}s → {where}"
    )
