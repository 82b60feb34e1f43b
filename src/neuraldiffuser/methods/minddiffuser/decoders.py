"""MindDiffuser's decoders for one subject: fitting them (``train --method minddiffuser``) and decoding the
test set (``decode``) into the shared ``decoded.hdf5`` format.

- c: the captions encoded at ``text_max_length`` tokens (15), averaged over each image's first ``captions``
  (5). The first token is the same for every caption (the start token under causal attention), so it is not
  regressed: it is taken from the encoding of "" and written back at decoding.
- z: the VAE latent of targets.hdf5.
- g: each guidance layer of targets.hdf5, restricted to its remain-rate mask (masks.py). The decoded g
  is zero outside the mask, as the reference scatters it back, and never exactly zero inside it, so
  the mask travels with the targets to the stage-2 loss.

Run folder::

    RUN/config.yaml  RUN/summary.json
    RUN/decoders/{manifest.json, scaler.safetensors, c_first.safetensors, masks.safetensors, c/, z/, g0/, …}
    RUN/decoded.hdf5  (decode)

Each fitted part is written atomically and skipped when present, so an interrupted fit resumes.
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
from ...data.splits import training_rows
from ...errors import DataError
from ...targets.store import TargetStore, write_store
from ...training.manifest import read_manifest
from ...utils.io import atomic_path, atomic_write_json
from ...utils.progress import track
from .masks import predictability, remain_mask
from .ridge import VoxelSelectionRidge

METHOD = "minddiffuser"


def resolve_device(spec: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if spec == "auto" else spec)


@torch.no_grad()
def caption_lists(ds, images, limit: int | None) -> list[list[str]]:
    """Each image's first ``limit`` captions (all with None): the reference averages the first 5."""
    return [ds.captions_of(int(i))[:limit] for i in images]


def encode_short(components, captions: list[list[str]], length: int, batch: int = 256) -> torch.Tensor:
    """Text-encoder last hidden state at ``length`` tokens, averaged over each image's captions
    → (n, length, D)."""
    limit = int(components.text_encoder.config.max_position_embeddings)
    if length > limit:
        raise DataError(
            f"text_max_length {length} exceeds the text encoder's {limit} positions",
            where="minddiffuser.text_max_length",
        )
    flat = [c for caps in captions for c in caps]
    parts = []
    for i in range(0, len(flat), batch):
        tok = components.tokenizer(
            flat[i : i + batch], padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        )
        out = components.text_encoder(tok.input_ids.to(components.device))
        parts.append((out[0] if isinstance(out, tuple) else out.last_hidden_state).float().cpu())
    hidden = torch.cat(parts)
    owner = torch.repeat_interleave(torch.arange(len(captions)), torch.tensor([len(c) for c in captions]))
    total = torch.zeros(len(captions), *hidden.shape[1:]).index_add_(0, owner, hidden)
    return total / torch.bincount(owner, minlength=len(captions)).view(-1, 1, 1)


def average_by_image(x: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row per image (ascending index): the mean of its trials."""
    uniq, inv = np.unique(images, return_inverse=True)
    total = np.zeros((len(uniq), x.shape[1]), dtype=np.float64)
    np.add.at(total, inv, x)
    return (total / np.bincount(inv)[:, None]).astype(np.float32), uniq


def training_data(config: Config, subject) -> tuple[np.ndarray, np.ndarray, VoxelScaler]:
    """Scaled training voxels (per image or per trial) with their image indices, and the scaler."""
    rows = training_rows(subject, config.data, config.seed)
    scaler = (
        VoxelScaler.fit(subject, rows)
        if config.data.zscore == "train"
        else VoxelScaler.identity(subject.n_voxels)
    )
    x, images = scaler.transform(subject.read(rows)), subject.image_of_rows(rows)
    if config.minddiffuser.average_train_repeats:
        x, images = average_by_image(x, images)
    return x, images, scaler


def _fit_part(folder: Path, n_feat: int, x, y, config: Config, name: str, log: dict) -> None:
    """Fit one decoder into ``folder`` unless it is already there (resume)."""
    if (folder / "config.json").is_file():
        return
    md = config.minddiffuser
    t0 = time.perf_counter()
    VoxelSelectionRidge(n_feat, md.alpha, md.solve_memory_mb, resolve_device(md.device)).fit(
        x, y, progress=f"minddiffuser fit {name}"
    ).save(folder)
    log[name] = {
        "outputs": int(y.shape[1]),
        "n_feat": int(min(n_feat, x.shape[1])),
        "seconds": time.perf_counter() - t0,
    }


def fit_masks(config: Config, x: np.ndarray, g: np.ndarray, path: Path, log: dict) -> dict[str, np.ndarray]:
    """Per layer: cross-validated predictability of every feature, and the remain-rate mask (saved)."""
    from safetensors.numpy import load_file, save_file

    if path.is_file():
        return {k: v.astype(bool) if k.startswith("mask") else v for k, v in load_file(str(path)).items()}
    md = config.minddiffuser
    out = {}
    for layer in track(range(g.shape[1]), "minddiffuser g masks"):
        t0 = time.perf_counter()
        y = g[:, layer].reshape(len(g), -1)
        scores = predictability(
            x, y, md.n_feat_g[layer], md.alpha, md.mask_folds, md.solve_memory_mb, resolve_device(md.device)
        )
        out[f"score{layer}"] = scores.reshape(g.shape[2:]).astype(np.float32)
        out[f"mask{layer}"] = remain_mask(scores, md.remain_rate).reshape(g.shape[2:])
        log[f"mask{layer}"] = {
            "kept": int(out[f"mask{layer}"].sum()),
            "of": int(scores.size),
            "mean_r_kept": float(scores[out[f"mask{layer}"].ravel()].mean()),
            "mean_r_all": float(scores.mean()),
            "seconds": time.perf_counter() - t0,
        }
    with atomic_path(path) as tmp:
        save_file({k: v.astype(np.uint8) if v.dtype == bool else v for k, v in out.items()}, str(tmp))
    return out


def fit_minddiffuser(
    config: Config, run_dir: str | Path, targets: str | Path, components=None
) -> dict[str, Any]:
    """Fit every MindDiffuser decoder of ``config.data.subject`` into RUN/decoders; returns the summary."""
    from safetensors.torch import save_file

    from ...zoo.loader import Components

    md, run_dir, t_start = config.minddiffuser, Path(run_dir), time.perf_counter()
    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    subj = ds.subject(config.data.subject)
    store = TargetStore(targets)
    store.require_made_from(ds)
    missing = [k for k in ("z", "g") if k not in store.keys]
    if missing:
        raise DataError(
            f"MindDiffuser decodes z and g from the target store, which lacks {missing}",
            where=str(store.path),
            fix="extract them first",
        )
    if len(md.n_feat_g) != store.shape("g")[0]:
        raise DataError(
            f"minddiffuser.n_feat_g has {len(md.n_feat_g)} entries for {store.shape('g')[0]} guidance layers",
            where=str(store.path),
            fix="give one n_feat per layer",
        )
    dec = run_dir / "decoders"
    dec.mkdir(parents=True, exist_ok=True)
    x, images, scaler = training_data(config, subj)
    log: dict[str, Any] = {}
    comp = components or Components(config.zoo, device="cpu")
    c = encode_short(comp, caption_lists(ds, images, md.captions), md.text_max_length).numpy()
    first = encode_short(comp, [[""]], md.text_max_length)[0, 0]
    _fit_part(dec / "c", md.n_feat_c, x, c[:, 1:].reshape(len(c), -1), config, "c", log)
    z = store.get_images("z", images)
    _fit_part(dec / "z", md.n_feat_z, x, z.reshape(len(z), -1), config, "z", log)
    g = store.get_images("g", images)
    masks = fit_masks(config, x, g, dec / "masks.safetensors", log)
    for layer in range(g.shape[1]):
        y = g[:, layer][:, masks[f"mask{layer}"]]
        _fit_part(dec / f"g{layer}", md.n_feat_g[layer], x, y, config, f"g{layer}", log)
    scaler.save(dec / "scaler.safetensors")
    with atomic_path(dec / "c_first.safetensors") as tmp:
        save_file({"first": first.contiguous()}, str(tmp))
    manifest = {
        "method": METHOD,
        "subject": subj.name,
        "n_voxels": subj.n_voxels,
        "train_rows": int(len(x)),
        "average_train_repeats": md.average_train_repeats,
        "text_max_length": md.text_max_length,
        "remain_rate": md.remain_rate,
        "n_feat": {"c": md.n_feat_c, "z": md.n_feat_z, "g": list(md.n_feat_g)},
        "alpha": md.alpha,
        "shapes": {"c": list(c.shape[1:]), "z": list(z.shape[1:]), "g": list(g.shape[1:])},
        "targets": str(Path(targets).resolve()),
        "targets_attrs": {k: v for k, v in store.attrs.items() if k != "created"},
    }
    atomic_write_json(dec / "manifest.json", manifest)
    summary = {"method": METHOD, "subject": subj.name, "fits": log, "seconds": time.perf_counter() - t_start}
    atomic_write_json(run_dir / "summary.json", summary)
    store.close()
    return summary


def scatter_g(pred: dict[int, np.ndarray], masks: dict[str, np.ndarray], shape: list[int]) -> np.ndarray:
    """Decoded g (n, L, T, W): zeros outside each mask; values inside that are exactly 0 become the smallest
    normal float, so that ``g != 0`` recovers the mask (stage 2 reads it that way)."""
    n = len(next(iter(pred.values())))
    g = np.zeros((n, *shape), dtype=np.float32)
    tiny = np.finfo(np.float32).tiny
    for layer, values in pred.items():
        values = np.where(values == 0, tiny, values).astype(np.float32)
        g[:, layer][:, masks[f"mask{layer}"]] = values
    return g


def decode_minddiffuser(config: Config, run_dir: str | Path, out: str | Path) -> Path:
    """Decode the subject's test set into ``out`` (decoded.hdf5 format, g and c as
    MindDiffuser shapes them)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir, METHOD)
    dec = run_dir / "decoders"
    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    subj = ds.subject(manifest["subject"])
    test = subj.test_set(config.data.test_repeats, config.data.test_order)
    raw = subj.test_betas(test, config.data.average)
    if (
        config.minddiffuser.test_zscore == "test"
    ):  # the released scripts' choice: statistics of the test rows themselves
        flat = raw.reshape(-1, raw.shape[-1])
        scaler = VoxelScaler(flat.mean(0), flat.std(0) + 1e-6)
    else:
        scaler = VoxelScaler.load(dec / "scaler.safetensors")
    values = predict_minddiffuser(dec, manifest, scaler.transform(raw))
    attrs = {
        **manifest.get("targets_attrs", {}),
        "subject": manifest["subject"],
        "average": config.data.average,
        "method": METHOD,
        "source_run": str(run_dir.resolve()),
        "test_order": test.order,
        "padded": test.padded.sum(1).tolist(),
        "text_max_length": manifest["shapes"]["c"][0],
        "remain_rate": manifest["remain_rate"],
        "g_dtype": "float32",
        "test_zscore": config.minddiffuser.test_zscore,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    return write_store(out, test.images, values, attrs)


def predict_minddiffuser(dec: Path, manifest: dict[str, Any], x: np.ndarray) -> dict[str, np.ndarray]:
    """Scaled voxels (n, V), or (n, R, V) whose per-repeat predictions are averaged → {'c',
    'z', 'g'} float32."""
    from safetensors.numpy import load_file

    reps = [x] if x.ndim == 2 else [x[:, r] for r in range(x.shape[1])]

    def predict(name: str) -> np.ndarray:
        model = VoxelSelectionRidge.from_pretrained(dec / name)
        return np.mean([model.predict(r) for r in reps], axis=0)

    shapes = manifest["shapes"]
    first = load_file(str(dec / "c_first.safetensors"))["first"]
    c_rest = predict("c").reshape(len(x), shapes["c"][0] - 1, shapes["c"][1])
    c = np.concatenate([np.broadcast_to(first, (len(x), 1, shapes["c"][1])), c_rest], axis=1).astype(
        np.float32
    )
    z = predict("z").reshape(len(x), *shapes["z"]).astype(np.float32)
    masks = {
        k: v.astype(bool)
        for k, v in load_file(str(dec / "masks.safetensors")).items()
        if k.startswith("mask")
    }
    g = scatter_g({layer: predict(f"g{layer}") for layer in range(shapes["g"][0])}, masks, shapes["g"])
    return {"c": c, "z": z, "g": g}
