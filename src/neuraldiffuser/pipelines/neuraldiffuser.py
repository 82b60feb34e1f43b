"""``NeuralDiffuserPipeline``: a trained run as one object, in diffusers' idiom.

``from_pretrained(folder)`` reads a training run folder (``neuraldiffuser train --out RUN``, the demo's
``DEMO/decoders``) or a folder written by ``save_pretrained``; both hold the same files::

    FOLDER/config.yaml            the run's resolved config (sampler settings included)
    FOLDER/decoders/              manifest.json, one BrainDecoder folder per model, scaler.safetensors, z_stats.safetensors
    FOLDER/ridge/                 the ridge baseline (when the run fitted one)
    FOLDER/pipeline.json          (saved pipelines) class, version, relative paths, provenance, scores
    FOLDER/zoo/                   (saved pipelines) the diffusion stack, unless it is a hub id
    FOLDER/README.md              (saved pipelines) the model card

Decoding and sampling are the stages' own functions (``training.decode.predict_targets``,
``sampling.sampler.NeuralDiffuserSampler``), so a pipeline gives what ``decode`` + ``reconstruct`` give.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, save_config
from ..config.load import load_run_config
from ..errors import ConfigError, DataError, ModelLoadError
from ..utils.io import atomic_dir, atomic_write_json, atomic_write_text
from ..utils.validation import check_array, check_consistent_rows, pydantic_message

PIPELINE_FILE = "pipeline.json"


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def read_info(folder: Path, config) -> dict[str, Any]:
    """pipeline.json of a saved folder ({} for a training run); points ``config.zoo`` at the bundled zoo copies."""
    info = json.loads((folder / PIPELINE_FILE).read_text()) if (folder / PIPELINE_FILE).is_file() else {}
    for key, rel in info.get("bundled", {}).items():
        setattr(config.zoo, key, str((folder / rel).resolve()))
    return info


def copy_zoo(config, tmp: Path, bundle: bool = True) -> dict[str, str]:
    """Copy the local zoo folders of ``config`` into ``tmp`` and point the config at them (relative); returns what was
    bundled. Hub ids stay ids."""
    from ..zoo.loader import is_local, resolve_path

    bundled: dict[str, str] = {}
    for key, sub in (("path", "zoo"), ("guidance_encoder", "guidance_encoder")):
        spec = getattr(config.zoo, key)
        if bundle and spec and is_local(resolve_path(spec)):
            shutil.copytree(resolve_path(spec), tmp / sub)
            setattr(config.zoo, key, sub)
            bundled[key] = sub
    return bundled


class RunFacts:
    """What every pipeline of a trained run answers the same way (its manifest, voxel scaler, config and zoo)."""

    manifest: dict
    _components: Any

    @property
    def subject(self) -> str:
        return str(self.manifest["subject"])

    @property
    def n_voxels(self) -> int:
        return int(self.scaler.mean.shape[0])

    @property
    def components(self):
        """The diffusion stack (``zoo.loader.Components``), loaded on first use."""
        if self._components is None:
            from ..zoo.loader import Components

            self._components = Components(self.config.zoo, device=self.device)
        return self._components


class NeuralDiffuserPipeline(RunFacts):
    """fMRI betas → decoded targets (c, z, g) → images, for the one subject the decoders were fine-tuned on.

    Build it with :meth:`from_pretrained`; call :meth:`decode` for the targets, the pipeline itself for
    images, :meth:`generate` to sample from targets you already have, :meth:`save_pretrained` to write a
    portable folder.
    """

    method = "neuraldiffuser"

    def __init__(
        self,
        config: Config,
        manifest: dict[str, Any],
        decoders: dict,
        scaler,
        z_stats: dict | None = None,
        ridge=None,
        device: str | torch.device | None = None,
        info: dict[str, Any] | None = None,
    ):
        self.config, self.manifest, self.decoders, self.scaler = config, manifest, decoders, scaler
        self.z_stats, self.ridge, self.device = z_stats, ridge, _resolve_device(device)
        self.info = dict(info or {})
        self._components = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(subject={self.subject!r}, voxels={self.n_voxels}, models={list(self.decoders)}, "
            f"zoo={self.config.zoo.path!r}, kappa={self.config.sampler.kappa}, eta={self.config.sampler.eta})"
        )

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, device: str | torch.device | None = None
    ) -> NeuralDiffuserPipeline:
        """Load a training run folder or a saved pipeline folder (see the module docstring)."""
        from ..data import VoxelScaler
        from ..training.decode import load_decoders
        from ..training.manifest import read_manifest

        folder = Path(folder)
        if not folder.is_dir():
            raise ModelLoadError(
                "no such folder",
                where=str(folder),
                fix="give a training run folder or a save_pretrained folder",
            )
        if not (folder / "config.yaml").is_file():
            raise ModelLoadError(
                "no config.yaml",
                where=str(folder),
                fix="give the run folder that `train --out` wrote (it holds config.yaml)",
            )
        manifest = read_manifest(folder, cls.method)
        config = load_run_config(folder)
        info = read_info(folder, config)
        dev = _resolve_device(device)
        dec_dir = folder / "decoders"
        z_stats = None
        if (dec_dir / "z_stats.safetensors").is_file():
            from safetensors.numpy import load_file

            z_stats = load_file(str(dec_dir / "z_stats.safetensors"))
        ridge = None
        if (folder / "ridge" / "ridge.json").is_file():
            from ..models.ridge import RidgeDecoder

            ridge = RidgeDecoder.load(folder / "ridge")
        if not info:
            from .card import find_scores

            info = {"source": str(folder.resolve()), "scores": find_scores(folder)}
        decoders = load_decoders(dec_dir, manifest, dev)
        return cls(
            config,
            manifest,
            decoders,
            VoxelScaler.load(dec_dir / "scaler.safetensors"),
            z_stats,
            ridge,
            dev,
            info,
        )

    def save_pretrained(self, folder: str | Path, bundle_zoo: bool = True) -> Path:
        """Write a self-contained folder: config, decoders, scaler, z statistics, ridge, the zoo (a copy, unless it
        is a hub id or ``bundle_zoo`` is False), pipeline.json and a model card README.md. Paths inside are relative,
        so the folder can be moved or copied to another machine."""
        from .card import model_card

        folder = Path(folder)
        config = self.config.model_copy(deep=True)
        with atomic_dir(folder) as tmp:
            (tmp / "decoders").mkdir(parents=True)
            for name, model in self.decoders.items():
                model.save_pretrained(tmp / "decoders" / name)
            atomic_write_json(tmp / "decoders" / "manifest.json", self.manifest)
            self.scaler.save(tmp / "decoders" / "scaler.safetensors")
            if self.z_stats is not None:
                from safetensors.numpy import save_file

                save_file(dict(self.z_stats), str(tmp / "decoders" / "z_stats.safetensors"))
            if self.ridge is not None:
                self.ridge.save(tmp / "ridge")
            bundled = copy_zoo(config, tmp, bundle_zoo)
            dataset = config.data.path
            config.data.path = None  # the data stay where they are; the card and pipeline.json name them
            save_config(config, tmp)
            info = self.describe(dataset, bundled)
            atomic_write_json(tmp / PIPELINE_FILE, info)
            atomic_write_text(tmp / "README.md", model_card(info))
        return folder

    def describe(self, dataset: str | None = None, bundled: dict[str, str] | None = None) -> dict[str, Any]:
        """What pipeline.json records: class, version, relative paths, the data, the sampler, the scores."""
        from .. import __version__

        c, m = self.config, self.manifest
        return {
            "class": type(self).__name__,
            "version": __version__,
            "bundled": bundled or {},
            "source": self.info.get("source"),
            "preset": c.preset,
            "zoo": self.info.get("zoo", c.zoo.path),
            "data": {
                **self.info.get("data", {}),
                "dataset": self.info.get("data", {}).get("dataset", dataset),
                "layout": c.data.layout,
                "subject": m["subject"],
                "n_voxels": m.get("n_voxels"),
                "train_images": m.get("train_images"),
                "sessions": m.get("sessions"),
                "holdout_images": m.get("holdout_images", 0),
            },
            "decoder_layout": m.get("layout"),
            "models": list(m["models"]),
            "ridge": self.ridge is not None,
            "sampler": c.sampler.model_dump(mode="json"),
            "scores": self.info.get("scores"),
        }

    # ------------------------------------------------------------------ decoding

    def check_betas(self, betas: Any, subject: str | None = None) -> np.ndarray:
        if subject is not None and subject != self.subject:
            raise DataError(
                f"'subject' is {subject!r} but these decoders were fine-tuned on {self.subject!r}",
                fix="load the run trained for that subject",
            )
        return check_array(betas, "betas", ndim=(2, 3), shape=(self.n_voxels,))

    def decode(self, betas: Any, subject: str | None = None, method: str = "neural") -> dict[str, np.ndarray]:
        """Raw betas → {'c': (n, tokens, width), 'z': (n, C, h, w), 'g': (n, L, tokens, width)} float32.

        ``betas``: (n, n_voxels) float, one row per image (repeats already averaged, as ``data.average: voxels``),
        or (n, R, n_voxels) to decode each repeat and average the outputs. They are z-scored with the run's
        training statistics here. ``method='ridge'`` uses the run's ridge baseline. With ``decode.z_match`` the z of
        the n rows are matched to the training z statistics together, so decode the whole test set in one call.
        """
        from ..training.decode import predict_targets

        x = self.scaler.transform(self.check_betas(betas, subject))
        if method not in ("neural", "ridge"):
            raise ConfigError(f"'method' must be 'neural' or 'ridge', got {method!r}")
        if method == "ridge" and self.ridge is None:
            raise ModelLoadError("this run has no ridge baseline", fix="train with train.ridge: true")
        if len(x) < 2 and self.config.decode.z_match and "z" in self.manifest["heads"]:
            import warnings

            warnings.warn(
                "decode.z_match matches z across the rows of one call: with a single row z becomes the training "
                "mean; decode several images together, or set pipe.config.decode.z_match = False",
                stacklevel=2,
            )
        return predict_targets(
            self.config,
            self.manifest,
            x,
            models=self.decoders,
            ridge=self.ridge if method == "ridge" else None,
            z_stats=self.z_stats,
            device=self.device,
            z_ridge=self.ridge,
        )

    # ------------------------------------------------------------------ sampling

    def sampler_config(self, **overrides: Any):
        """The run's sampler settings with ``overrides`` (None values ignored), validated."""
        from ..config.sections.sampler import SamplerConfig

        values = {**self.config.sampler.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return SamplerConfig.model_validate(values)
        except ValueError as exc:
            raise ConfigError(pydantic_message(exc), where="sampler") from None

    def generate(
        self,
        targets: dict[str, np.ndarray],
        *,
        seed: int | None = None,
        images: Any = None,
        output_type: str = "np",
        **sampler: Any,
    ):
        """Sample from decoded (or true) targets: {'c', 'z', 'g'} with n rows each (g needed when κ > 0).

        Row i is seeded with ``seed + images[i]`` (``sampler.image_seed: by_index``; ``images`` default 0…n−1,
        give the test-image indices to match the ``reconstruct`` stage), so each image is reproducible alone.
        ``sampler`` overrides settings of the run's sampler (kappa, eta, repeats, steps, strength, …).
        Returns (n, R, H, W, 3) uint8 (``output_type='np'``), a list of n lists of R PIL images ('pil'), or
        (n, R, 3, H, W) float in [0, 1] ('pt').
        """
        from ..sampling.methods import SamplerReconstructor
        from ..sampling.runner import to_uint8
        from ..sampling.sampler import NeuralDiffuserSampler

        if output_type not in ("np", "pil", "pt"):
            raise ConfigError(f"'output_type' must be 'np', 'pil' or 'pt', got {output_type!r}")
        cfg = self.config.model_copy(deep=True)
        cfg.sampler = self.sampler_config(**sampler)
        cfg.seed = int(self.config.seed if seed is None else seed)
        keys = ("c", "z", "g") if cfg.sampler.kappa > 0 else ("c", "z")
        missing = [k for k in keys if k not in targets]
        if missing:
            raise DataError(
                f"'targets' lack {missing}", fix="decode them, or pass kappa=0 for the unguided sampler"
            )
        arrays = {k: check_array(targets[k], f"targets['{k}']", min_rows=1) for k in keys}
        n = check_consistent_rows(**{f"targets['{k}']": v for k, v in arrays.items()})
        ids = (
            np.arange(n)
            if images is None
            else check_array(images, "images", ndim=1, dtype=np.int64, integer=True)
        )
        check_consistent_rows(targets=arrays["c"], images=ids)
        recon = SamplerReconstructor(NeuralDiffuserSampler(self.components, cfg.sampler), cfg)
        out: list[torch.Tensor] = []
        per_call = cfg.sampler.image_batch
        for i in range(0, n, per_call):
            rows = range(i, min(n, i + per_call))
            ts = [{k: torch.from_numpy(arrays[k][r]).to(self.device) for k in keys} for r in rows]
            out += (
                recon.batch(ts, [int(ids[r]) for r in rows])
                if len(ts) > 1
                else [recon(ts[0], int(ids[rows[0]]))]
            )
        if output_type == "pt":
            return torch.stack([o.detach().float().cpu() for o in out])
        arr = np.stack([to_uint8(o) for o in out])
        if output_type == "pil":
            from PIL import Image

            return [[Image.fromarray(im) for im in reps] for reps in arr]
        return arr

    def __call__(
        self,
        betas: Any,
        subject: str | None = None,
        *,
        kappa: float | None = None,
        eta: float | None = None,
        repeats: int | None = None,
        seed: int | None = None,
        images: Any = None,
        output_type: str = "np",
        method: str = "neural",
        **sampler: Any,
    ):
        """Raw betas (n, n_voxels) float → images (n, R, H, W, 3) uint8 (see :meth:`decode` and :meth:`generate`).

        ``kappa`` (≥ 0; 0 = unguided), ``eta`` (fraction of guided steps in [0, 1]), ``repeats`` (R) and any other
        sampler setting default to the run's; ``seed`` to the run's seed.
        """
        targets = self.decode(betas, subject, method=method)
        return self.generate(
            targets,
            seed=seed,
            images=images,
            output_type=output_type,
            kappa=kappa,
            eta=eta,
            repeats=repeats,
            **sampler,
        )
