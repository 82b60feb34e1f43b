"""The comparison methods behind the pipeline entry points: ``from_pretrained(run)``,
``decode``, ``__call__``.

They wrap the methods' own runners (``methods.minddiffuser``, ``methods.neuropictor``), reading the run
folders ``train --method minddiffuser|neuropictor`` writes. ``load_pipeline(folder)`` picks the class from the
run's ``decoders/manifest.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.load import load_run_config
from ..errors import ConfigError, DataError, ModelLoadError
from ..training.manifest import read_manifest
from ..utils.validation import check_array, check_consistent_rows
from .neuraldiffuser import (
    PIPELINE_FILE,
    NeuralDiffuserPipeline,
    RunFacts,
    _resolve_device,
    copy_zoo,
    images_out,
    read_info,
)


class _RunPipeline(RunFacts):
    """What the comparison pipelines share: the run's config, manifest, voxel scaler, zoo and seeding."""

    method = ""

    def __init__(self, folder: str | Path, device: str | torch.device | None = None):
        from ..data import VoxelScaler

        self.folder = Path(folder)
        self.manifest = self.read_manifest(self.folder)
        self.config = load_run_config(self.folder)
        self.info = read_info(self.folder, self.config)
        self.scaler = VoxelScaler.load(self.folder / "decoders" / "scaler.safetensors")
        self.device = _resolve_device(device)
        self._components = None

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device | None = None):
        """Load a ``train --method ...`` run folder."""
        return cls(folder, device)

    @staticmethod
    def read_manifest(folder: Path) -> dict[str, Any]:
        return read_manifest(folder)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(subject={self.subject!r}, "
            f"voxels={self.n_voxels}, run={str(self.folder)!r})"
        )

    check_betas = NeuralDiffuserPipeline.check_betas

    def __call__(
        self,
        betas: Any,
        subject: str | None = None,
        *,
        repeats: int | None = None,
        seed: int | None = None,
        images: Any = None,
        output_type: str = "np",
    ):
        """Raw betas → images (n, R, H, W, 3) uint8 (or PIL / 'pt' tensors), R = ``repeats``
        (default the run's)."""
        self.check_output(output_type)
        t = self.decode(betas, subject)
        sampler = self.make_sampler(int(repeats or self.config.sampler.repeats))
        seeds = self.seeds(len(t["c"]), seed, images)
        return images_out([self.sample_row(sampler, t, i, s) for i, s in enumerate(seeds)], output_type)

    def make_sampler(self, repeats: int):
        """The method's sampler for ``repeats`` reconstructions per row."""
        raise NotImplementedError

    def sample_row(self, sampler, targets: dict[str, np.ndarray], i: int, seed: int) -> torch.Tensor:
        """Row ``i`` of the decoded ``targets`` → its (R, 3, H, W) images in [0, 1]."""
        raise NotImplementedError

    def seeds(self, n: int, seed: int | None, images: Any) -> list[int]:
        """Row i's seed: ``seed + images[i]`` (``sampler.image_seed: by_index``, as the reconstruct
        stage), else ``seed``."""
        base = int(self.config.seed if seed is None else seed)
        ids = (
            np.arange(n)
            if images is None
            else check_array(images, "images", ndim=1, dtype=np.int64, integer=True)
        )
        check_consistent_rows(betas=np.empty(n), images=ids)
        return [base + int(i) if self.config.sampler.image_seed == "by_index" else base for i in ids]

    def save_pretrained(self, folder: str | Path, bundle_zoo: bool = True) -> Path:
        """A self-contained copy of the run: its decoders/ folder (and the model it names), its config with
        relative paths, the zoo (unless a hub id or ``bundle_zoo`` is False), pipeline.json and a
        model card README.md."""
        import shutil

        from .. import __version__
        from ..config import save_config
        from ..utils.io import atomic_dir, atomic_write_json, atomic_write_text
        from .card import find_scores, model_card

        folder, config = Path(folder), self.config.model_copy(deep=True)
        with atomic_dir(folder) as tmp:
            shutil.copytree(self.folder / "decoders", tmp / "decoders")
            if (
                "model" in self.manifest
            ):  # NeuroPictor: the final stage's model folder, at the same relative path
                shutil.copytree(self.folder / self.manifest["model"], tmp / self.manifest["model"])
            bundled = copy_zoo(config, tmp, bundle_zoo)
            dataset, config.data.path = config.data.path, None
            save_config(config, tmp)
            m = self.manifest
            info = {
                "class": type(self).__name__,
                "version": __version__,
                "bundled": bundled,
                "source": self.info.get("source", str(self.folder.resolve())),
                "preset": config.preset,
                "zoo": self.info.get("zoo", self.config.zoo.path),
                "data": {
                    "dataset": self.info.get("data", {}).get("dataset", dataset),
                    "layout": config.data.layout,
                    "subject": m["subject"],
                    "n_voxels": m.get("n_voxels"),
                    "train_images": m.get("train_rows"),
                    "sessions": config.data.sessions,
                    "holdout_images": config.data.holdout_images,
                },
                "decoder_layout": self.method,
                "models": sorted(p.name for p in (self.folder / "decoders").iterdir() if p.is_dir()),
                "ridge": False,
                "sampler": getattr(config, self.method).model_dump(mode="json"),
                "scores": self.info.get("scores", find_scores(self.folder, self.method)),
            }
            atomic_write_json(tmp / PIPELINE_FILE, info)
            atomic_write_text(tmp / "README.md", model_card(info))
        return folder

    @staticmethod
    def check_output(output_type: str) -> None:
        if output_type not in ("np", "pil", "pt"):
            raise ConfigError(f"'output_type' must be 'np', 'pil' or 'pt', got {output_type!r}")


class MindDiffuserPipeline(_RunPipeline):
    """MindDiffuser: ridge decoders of c, z and masked g, then img2img and back-propagation
    through the sampler."""

    method = "minddiffuser"

    @staticmethod
    def read_manifest(folder: Path) -> dict[str, Any]:
        return read_manifest(folder, "minddiffuser")

    def decode(self, betas: Any, subject: str | None = None) -> dict[str, np.ndarray]:
        """Raw betas (n, n_voxels) or (n, R, n_voxels) → {'c', 'z', 'g'} float32 as MindDiffuser shapes them
        (g zero outside its masks). With ``minddiffuser.test_zscore: test`` the rows are z-scored with
        their own statistics."""
        from ..data import VoxelScaler
        from ..methods.minddiffuser.decoders import predict_minddiffuser

        raw = self.check_betas(betas, subject)
        scaler = self.scaler
        if self.config.minddiffuser.test_zscore == "test":
            flat = raw.reshape(-1, raw.shape[-1])
            scaler = VoxelScaler(flat.mean(0), flat.std(0) + 1e-6)
        return predict_minddiffuser(self.folder / "decoders", self.manifest, scaler.transform(raw))

    def make_sampler(self, repeats: int):
        from ..methods.minddiffuser.sampler import MindDiffuserSampler

        return MindDiffuserSampler(self.components, self.config.minddiffuser, repeats)

    def sample_row(self, sampler, targets: dict[str, np.ndarray], i: int, seed: int) -> torch.Tensor:
        dev = self.device
        c, z, g = (torch.from_numpy(targets[k][i]).to(dev) for k in ("c", "z", "g"))
        return sampler(c, z, g, seed=seed)


class NeuroPictorPipeline(_RunPipeline):
    """NeuroPictor-style: fMRI → text context and a control map that modulates the UNet;
    DDIM from pure noise."""

    method = "neuropictor"

    def __init__(self, folder: str | Path, device: str | torch.device | None = None):
        from ..methods.neuropictor.runner import load_run

        super().__init__(folder, device)
        _, self.model = load_run(self.folder, self.device)

    @staticmethod
    def read_manifest(folder: Path) -> dict[str, Any]:
        return read_manifest(folder, "neuropictor")

    def decode(self, betas: Any, subject: str | None = None) -> dict[str, np.ndarray]:
        """Raw betas (n, n_voxels) or (n, R, n_voxels) → {'c': (n, tokens, width), 'cmap': (n,
        C, h, w)} float32."""
        from ..methods.neuropictor.runner import fmri_outputs

        x = self.scaler.transform(self.check_betas(betas, subject))
        outs = [fmri_outputs(self.model, self.subject, row, self.device) for row in x]
        return {
            "c": np.stack([c.float().cpu().numpy() for c, _ in outs]),
            "cmap": np.stack([m.float().cpu().numpy() for _, m in outs]),
        }

    def make_sampler(self, repeats: int):
        from ..methods.neuropictor.pipeline import NeuroPictorSampler

        return NeuroPictorSampler(self.components, self.model, self.config.neuropictor, repeats)

    def sample_row(self, sampler, targets: dict[str, np.ndarray], i: int, seed: int) -> torch.Tensor:
        return sampler(torch.from_numpy(targets["c"][i]), torch.from_numpy(targets["cmap"][i]), seed=seed)


PIPELINES = {
    "neuraldiffuser": NeuralDiffuserPipeline,
    "minddiffuser": MindDiffuserPipeline,
    "neuropictor": NeuroPictorPipeline,
}


def load_pipeline(folder: str | Path, device: str | torch.device | None = None):
    """The pipeline of whichever method trained the run in ``folder`` (from its decoders/manifest.json)."""
    path = Path(folder) / "decoders" / "manifest.json"
    if not path.is_file():
        raise ModelLoadError(
            "no decoders/manifest.json",
            where=str(folder),
            fix="give a run folder written by `neuraldiffuser train`",
        )
    method = json.loads(path.read_text()).get("method", "neuraldiffuser")
    if method not in PIPELINES:
        raise DataError(
            f"the run was made by an unknown method '{method}'",
            where=str(path),
            fix=f"known: {', '.join(PIPELINES)}",
        )
    return PIPELINES[method].from_pretrained(folder, device)
