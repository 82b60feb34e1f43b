"""Simulate a whole dataset: scenes → subjects' encoding models → design → betas → both layouts.

``simulate_dataset(out, SimulateConfig)`` is what ``neuraldiffuser simulate`` runs. Streams of random
numbers are derived from (seed, purpose, subject), so every file is a deterministic function of the
seed and preset, and changing one subject's size does not change the others.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..utils.progress import progress_bar
from .encoding import FIELD_DEG, EncodingModel
from .features import FilterBank, channel_names
from .presets import NOISE_CEILING, ROI_NAMES, Preset, resolve_preset
from .scenes import caption_records, render, sample_records
from .semantic import ATTRIBUTES
from .subjects import calibrate, draw_subject

VERSION = 1
SEED_SUBJECT, SEED_DESIGN, SEED_NOISE = 1, 2, 3


def _render(records: list[dict], size: int, chunk: int = 1024) -> np.ndarray:
    images = np.empty((len(records), size, size, 3), dtype=np.uint8)
    with progress_bar("render scenes", len(records)) as bar:
        for start in range(0, len(records), chunk):
            images[start : start + chunk] = render(records[start : start + chunk], size)
            bar.advance(len(records[start : start + chunk]))
    return images


def _semantic(ventral, images: np.ndarray, chunk: int = 512) -> np.ndarray:
    out = np.empty((len(images), len(ATTRIBUTES)), dtype=np.float32)
    with progress_bar("ventral network", len(images)) as bar:
        for start in range(0, len(images), chunk):
            out[start : start + chunk] = ventral.semantic(images[start : start + chunk])
            bar.advance(len(images[start : start + chunk]))
    return out


def _retinotopic(model: EncodingModel, bank: FilterBank, images: np.ndarray, name: str, chunk: int = 128) -> np.ndarray:
    out = np.empty((len(images), model.n_voxels), dtype=np.float32)
    with progress_bar(f"{name} pRF responses", len(images)) as bar:
        for start in range(0, len(images), chunk):
            out[start : start + chunk] = model.retinotopic_drive(bank.maps(images[start : start + chunk]))
            bar.advance(len(images[start : start + chunk]))
    return out


def _subject(index: int, preset: Preset, seed: int, noise_scale: float, images, semantic, ventral, bank, channel_norm):
    """Draw, calibrate and measure one subject: (EncodingModel, SubjectArrays)."""
    from ..data.layout import SubjectArrays
    from .design import make_design, measure

    name = f"subj{index + 1:02d}"
    rng = np.random.default_rng([seed, SEED_SUBJECT, index])
    n_vox = int(rng.integers(preset.voxels[0], preset.voxels[1] + 1))
    params = draw_subject(rng, n_vox)
    noise_factor = float(rng.uniform(0.85, 1.15)) * noise_scale
    meta = {"subject": name, "resolution": preset.image_size, "field_deg": FIELD_DEG, "roi_names": list(ROI_NAMES), "noise_factor": noise_factor, "version": VERSION}
    model = EncodingModel(params, meta, ventral, channel_norm)
    test_ids = np.arange(preset.test_images)
    start = preset.test_images + index * preset.train_images
    seen = np.concatenate([test_ids, np.arange(start, start + preset.train_images)])
    ret = _retinotopic(model, bank, images[seen], name)
    sem = model.semantic_drive(semantic[seen])
    calibrate(params, ret, sem, rng, noise_factor)
    mu = model.combine(ret, sem)
    design = make_design(np.random.default_rng([seed, SEED_DESIGN, index]), preset, test_ids, seen[preset.test_images :])
    betas = measure(np.random.default_rng([seed, SEED_NOISE, index]), mu, design, {int(i): r for r, i in enumerate(seen)}, params["noise_sd"])
    arrays = SubjectArrays(betas, design.image, design.session, design.split, roi=params["roi"], roi_names=list(ROI_NAMES))
    return model, arrays


def _zscored(arrays):
    """MindEye2's ``_renorm`` betas: z-scored per voxel with training-trial statistics."""
    train = arrays.split == "train"
    mean = arrays.betas[train].mean(axis=0)
    std = arrays.betas[train].std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return ((arrays.betas - mean) / std).astype(np.float32), mean.astype(np.float32), std.astype(np.float32)


def _write_simulator(root: Path, meta: dict, records: list[dict], channel_norm: np.ndarray, models: dict, units: dict | None = None) -> None:
    from safetensors.numpy import save_file

    from ..utils.io import atomic_save, atomic_write_json
    from .ventral import WEIGHTS

    sim = root / "simulator"
    sim.mkdir(parents=True, exist_ok=True)
    atomic_write_json(sim / "simulator.json", meta)
    atomic_write_json(sim / "scenes.json", records, indent=None)
    atomic_save(sim / "filterbank.safetensors", lambda p: save_file({"channel_norm": channel_norm}, str(p)))
    (sim / "ventral").mkdir(exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(WEIGHTS / f, sim / "ventral" / f)
    for name, model in models.items():
        saved_units = model.units
        model.units = units[name] if units else None
        model.save(sim)
        model.units = saved_units


def simulate_dataset(out: str | Path, cfg) -> str:
    """Simulate and write a dataset as configured by ``cfg`` (a ``SimulateConfig``); returns a summary line."""
    from ..data.layout import write_generic
    from ..data.nsd import write_mindeye2
    from .ventral import Ventral

    t0 = time.perf_counter()
    preset = resolve_preset(cfg)
    out = Path(out)
    n_images = preset.test_images + preset.subjects * preset.train_images
    records = sample_records(n_images, cfg.seed)
    images = _render(records, preset.image_size)
    captions = dict(enumerate(caption_records(records, cfg.seed)))
    ventral = Ventral()
    semantic = _semantic(ventral, images)
    bank = FilterBank(preset.image_size)
    channel_norm = bank.maps(images[: min(512, n_images)]).mean(axis=(0, 2, 3)).astype(np.float32)  # test images first: shared by all
    models, subjects = {}, {}
    for s in range(preset.subjects):
        model, arrays = _subject(s, preset, cfg.seed, cfg.noise_scale, images, semantic, ventral, bank, channel_norm)
        models[model.meta["subject"]], subjects[model.meta["subject"]] = model, arrays
    meta = {
        "generator": "neuraldiffuser.simulate", "version": VERSION, "preset": preset.name, "seed": cfg.seed,
        "noise_scale": cfg.noise_scale, "sizes": preset.__dict__, "resolution": preset.image_size, "field_deg": FIELD_DEG,
        "roi_names": list(ROI_NAMES), "noise_ceiling_median": NOISE_CEILING, "attributes": ATTRIBUTES, "channels": channel_names(),
        "subjects": list(models), "test_images": list(range(preset.test_images)),
    }
    targets = []
    if cfg.layout in ("generic", "both"):
        generic = {k: _with_dtype(v, cfg.betas_dtype) for k, v in subjects.items()}
        write_generic(out, images, captions, generic, meta={"simulator": "simulator/simulator.json", "preset": preset.name, "seed": cfg.seed})
        _write_simulator(out, meta, records, channel_norm, models)
        targets.append(str(out))
    if cfg.layout in ("mindeye2", "both"):
        me2_root = out / "mindeye2" if cfg.layout == "both" else out
        renormed, units = {}, {}
        for name, arrays in subjects.items():
            z, mean, std = _zscored(arrays)
            renormed[name] = _replace_betas(arrays, z)
            units[name] = (mean, std)
        write_mindeye2(me2_root, images, captions, renormed, mtime=0.0)
        _write_simulator(me2_root, meta, records, channel_norm, models, units)
        targets.append(str(me2_root))
    trials = sum(len(a.betas) for a in subjects.values())
    voxels = ", ".join(f"{k}:{a.betas.shape[1]}" for k, a in subjects.items())
    return f"simulated {preset.name}: {len(subjects)} subjects ({voxels} voxels), {n_images} images, {trials} trials in {time.perf_counter() - t0:.1f}s → {' and '.join(targets)}"


def _replace_betas(arrays, betas):
    from dataclasses import replace

    return replace(arrays, betas=betas)


def _with_dtype(arrays, dtype: str):
    return arrays if dtype == "float32" else _replace_betas(arrays, arrays.betas.astype(dtype))
