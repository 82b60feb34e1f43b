"""Decoding the target subject's test set into ``decoded.hdf5`` (method notes §4.6).

Repeats are averaged before decoding (``data.average: voxels``, NeuralDiffuser) or each repeat is
decoded and the predictions are averaged (``outputs``, MindEye2). c and g are prior samples (DDIM,
``decode.prior_steps`` steps, η ``decode.prior_eta``); z optionally goes through distribution
matching: z-scored across the test predictions per dimension, then given the per-dimension mean and
std of the true z of the subject's training images. Rows follow the test-image order, which is saved.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.schema import Config
from ..data import VoxelScaler, open_dataset
from ..errors import ConfigError
from ..targets.store import write_store
from ..utils.progress import track
from .manifest import read_manifest


def match_distribution(pred: np.ndarray, mean: np.ndarray, std: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Per dimension: z-score across the predictions, then rescale to the training mean and std."""
    mu, sd = pred.mean(0, keepdims=True), pred.std(0, keepdims=True)
    return ((pred - mu) / (sd + eps) * std + mean).astype(np.float32)


DECODED_AS = {"z_mode": "z"}  # a z head trained on the posterior mode (train.z_target=mode) decodes the z


def assemble(per_head: dict[str, np.ndarray], heads: dict[str, list]) -> dict[str, np.ndarray]:
    """Head outputs → store keys: 'c', 'z', and 'g' stacked over layers as (n, L, tokens, width)."""
    out = {}
    for key in ("z", "c", "g"):
        names = sorted(
            (h for h, (k, _) in heads.items() if DECODED_AS.get(k, k) == key and h in per_head),
            key=lambda h: heads[h][1] or 0,
        )
        if not names:
            continue
        out[key] = np.stack([per_head[h] for h in names], axis=1) if key == "g" else per_head[names[0]]
    return out


def _batches(x: np.ndarray, size: int):
    for i in range(0, len(x), size):
        yield x[i : i + size]


def load_decoders(dec_dir: Path, manifest: dict, device: torch.device) -> dict:
    """The manifest's models from ``dec_dir``, in eval mode on ``device``."""
    from ..models.brain import BrainDecoder

    return {
        name: BrainDecoder.from_pretrained(dec_dir / name).to(device).eval() for name in manifest["models"]
    }


def decode_device(config: Config) -> torch.device:
    """Where the decoders run unless a caller says: CUDA when there is one and ``train.cpu`` is off."""
    return torch.device("cuda" if torch.cuda.is_available() and not config.train.cpu else "cpu")


@dataclass
class TrainedDecoders:
    """What decoding needs from a trained run, loaded once by :func:`load_trained`. The ``decode`` stage and
    ``NeuralDiffuserPipeline`` both decode through :meth:`decode`, so they give the same numbers."""

    manifest: dict
    scaler: VoxelScaler
    decoders: dict
    z_stats: dict | None = None
    ridge: Any = None
    dec_dir: Path | None = None

    def decode(
        self, config: Config, betas: np.ndarray, *, ridge: bool = False, device: torch.device | None = None
    ) -> dict[str, np.ndarray]:
        """Raw betas (n, V) or (n, R, V) → {'c', 'z', 'g'}: z-scored with the run's training statistics,
        then :func:`predict_targets` with the neural decoders (or, with ``ridge``, the ridge baseline)."""
        return predict_targets(
            config,
            self.manifest,
            self.scaler.transform(betas),
            models=self.decoders or None,
            ridge=self.ridge if ridge else None,
            z_stats=self.z_stats,
            dec_dir=self.dec_dir,
            device=device,
            z_ridge=self.ridge,
        )


def load_trained(
    run_dir: str | Path,
    device: torch.device,
    *,
    manifest: dict | None = None,
    neural: bool = True,
    ridge: bool | None = None,
) -> TrainedDecoders:
    """The run's manifest, voxel scaler, z statistics (when saved), decoders on ``device`` (unless
    ``neural`` is False) and ridge baseline (``ridge``: None = when the run has one, True = required)."""
    from ..models.ridge import RidgeDecoder

    run_dir = Path(run_dir)
    dec_dir = run_dir / "decoders"
    manifest = read_manifest(run_dir) if manifest is None else manifest
    z_stats = None
    if (dec_dir / "z_stats.safetensors").is_file():
        from safetensors.numpy import load_file

        z_stats = load_file(str(dec_dir / "z_stats.safetensors"))
    want_ridge = ridge or (ridge is None and (run_dir / "ridge" / "ridge.json").is_file())
    return TrainedDecoders(
        manifest,
        VoxelScaler.load(dec_dir / "scaler.safetensors"),
        load_decoders(dec_dir, manifest, device) if neural else {},
        z_stats,
        RidgeDecoder.load(run_dir / "ridge") if want_ridge else None,
        dec_dir,
    )


def run_neural(
    config: Config,
    dec_dir: Path,
    manifest: dict,
    x: np.ndarray,
    device: torch.device,
    models: dict | None = None,
) -> dict[str, np.ndarray]:
    """Every decoder of the manifest (loaded from ``dec_dir`` unless ``models`` are given) on scaled test
    voxels (n, V) or (n, R, V); returns per-head arrays."""
    d = config.decode
    gen = torch.Generator(device="cpu").manual_seed(int(config.seed if d.seed is None else d.seed))
    per_head: dict[str, list[np.ndarray]] = {}
    subject = manifest["subject"]
    for name, model in (models or load_decoders(dec_dir, manifest, device)).items():
        for xb in track(list(_batches(x, d.batch_size)), f"decode {name}"):
            reps = [xb] if xb.ndim == 2 else [xb[:, r] for r in range(xb.shape[1])]
            with torch.no_grad():
                outs = [
                    model.decode(
                        subject,
                        torch.from_numpy(np.ascontiguousarray(r)).to(device),
                        d.prior_steps,
                        d.prior_eta,
                        d.prior_cond_scale,
                        d.use_prior,
                        gen,
                        d.prior_samples,
                    )
                    for r in reps
                ]
            for h in outs[0]:
                per_head.setdefault(h, []).append(
                    torch.stack([o[h].float() for o in outs]).mean(0).cpu().numpy()
                )
    return {h: np.concatenate(v) for h, v in per_head.items()}


def run_ridge(ridge, x: np.ndarray, heads: list[str] | None = None) -> dict[str, np.ndarray]:
    """The ridge baseline on scaled voxels (n, V), or (n, R, V) with each repeat decoded and the
    outputs averaged (only ``heads`` when given)."""
    reps = [x] if x.ndim == 2 else [x[:, r] for r in range(x.shape[1])]
    preds = [ridge.predict(r, heads) for r in reps]
    return {h: np.mean([p[h] for p in preds], axis=0) for h in preds[0]}


def blend_z(
    z: np.ndarray, z_ridge, x: np.ndarray, manifest: dict, weight: float, dec_dir: Path | None
) -> np.ndarray:
    """(1 − weight) · the neural ``z`` + weight · the ridge baseline's z of the same voxels
    (``decode.z_ridge_weight``); ``z_ridge`` is the run's RidgeDecoder, loaded from RUN/ridge when None."""
    if z_ridge is None:
        from ..models.ridge import RidgeDecoder

        where = None if dec_dir is None else Path(dec_dir).parent / "ridge"
        if where is None or not (where / "ridge.json").is_file():
            raise ConfigError(
                f"decode.z_ridge_weight is {weight:g} but the run has no ridge baseline",
                where=str(where or "decode.z_ridge_weight"),
                fix="train with train.ridge: true, or set decode.z_ridge_weight=0",
            )
        z_ridge = RidgeDecoder.load(where)
    z_heads = [h for h, (k, _) in manifest["heads"].items() if DECODED_AS.get(k, k) == "z"]
    zr = assemble(run_ridge(z_ridge, x, z_heads), manifest["heads"])["z"]  # the c and g heads are not needed
    return ((1.0 - weight) * z + weight * zr).astype(np.float32)


def predict_targets(
    config: Config,
    manifest: dict,
    x: np.ndarray,
    *,
    models: dict | None = None,
    ridge=None,
    z_stats: dict | None = None,
    dec_dir: Path | None = None,
    device: torch.device | None = None,
    z_ridge=None,
) -> dict[str, np.ndarray]:
    """Scaled voxels (n, V) or (n, R, V) → {'c', 'z', 'g'} float32 arrays: the neural decoders (or ``ridge``),
    assembled per target; the neural z blended with the ridge baseline's (``z_ridge``, default RUN/ridge) by
    ``decode.z_ridge_weight``, then matched to the training statistics when ``decode.z_match`` is on."""
    if ridge is not None:
        per_head = run_ridge(ridge, x)
    else:
        device = device or decode_device(config)
        per_head = run_neural(config, dec_dir, manifest, x, device, models)
    values = assemble(per_head, manifest["heads"])
    if ridge is None and "z" in values and config.decode.z_ridge_weight > 0:
        values["z"] = blend_z(values["z"], z_ridge, x, manifest, config.decode.z_ridge_weight, dec_dir)
    if "z" in values and config.decode.z_match:
        if z_stats is None:
            from safetensors.numpy import load_file

            z_stats = load_file(str(dec_dir / "z_stats.safetensors"))
        values["z"] = match_distribution(values["z"], z_stats["mean"], z_stats["std"])
    return values


def decode_test(config: Config, run_dir: str | Path, out: str | Path, method: str = "neuraldiffuser") -> Path:
    """Decode the test set with the run's decoders (``method='neuraldiffuser'``) or its ridge
    baseline ('ridge')."""
    manifest = read_manifest(Path(run_dir))
    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    subj = ds.subject(manifest["subject"])
    test = subj.test_set(config.data.test_repeats, config.data.test_order)
    attrs = {"test_order": test.order, "padded": test.padded.sum(1).tolist()}
    return decode_betas(
        config, run_dir, subj.test_betas(test, config.data.average), test.images, out, method, attrs
    )


def decode_holdout(
    config: Config, run_dir: str | Path, out: str | Path, method: str = "neuraldiffuser"
) -> Path:
    """Decode the images the run held out of training (``data.holdout_images``), repeats gathered as
    for the test set."""
    from ..data.splits import holdout_set

    manifest = read_manifest(Path(run_dir))
    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    subj = ds.subject(manifest["subject"])
    held = holdout_set(subj, config.data, config.seed)
    if held is None or manifest.get("holdout_images", 0) != config.data.holdout_images:
        raise ConfigError(
            f"the run held out {manifest.get('holdout_images', 0)} images; the "
            f"config says data.holdout_images = {config.data.holdout_images}",
            where=str(Path(run_dir) / "decoders" / "manifest.json"),
            fix="train with --set data.holdout_images=N (N > 0) and decode with the run's own config",
        )
    attrs = {"split": "holdout", "holdout_seed": int(config.seed)}
    return decode_betas(
        config, run_dir, subj.test_betas(held, config.data.average), held.images, out, method, attrs
    )


def decode_betas(
    config: Config,
    run_dir: str | Path,
    betas: np.ndarray,
    images: np.ndarray,
    out: str | Path,
    method: str = "neuraldiffuser",
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Decode raw betas (n, V), or (n, R, V) per repeat, of ``images`` into a store at ``out``.

    The test set goes through here, and so does any other set of trials (e.g. a validation session).
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if len(betas) != len(images):
        raise ValueError(f"{len(betas)} rows of betas for {len(images)} images")
    ridge = method == "ridge"
    device = decode_device(config)
    trained = load_trained(run_dir, device, manifest=manifest, neural=not ridge, ridge=ridge)
    values = trained.decode(config, betas, ridge=ridge, device=device)
    attrs = {
        **manifest.get("targets_attrs", {}),
        "subject": manifest["subject"],
        "average": config.data.average,
        "method": method,
        "source_run": str(run_dir.resolve()),
        **(attrs or {}),
        "prior_steps": config.decode.prior_steps,
        "prior_eta": config.decode.prior_eta,
        "prior_samples": config.decode.prior_samples,
        "use_prior": config.decode.use_prior,
        "z_match": bool(config.decode.z_match),
        "z_ridge_weight": float(config.decode.z_ridge_weight) if method != "ridge" else 0.0,
        "seed": int(config.seed if config.decode.seed is None else config.decode.seed),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    values = {
        k: v.astype(
            np.float16
            if k == "g" and manifest.get("targets_attrs", {}).get("g_dtype") == "float16"
            else np.float32
        )
        for k, v in values.items()
    }
    return write_store(out, np.asarray(images), values, attrs)
