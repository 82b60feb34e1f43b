"""NeuroPictor inference: DDIM (η = 0) from pure noise with CFG, the fMRI control in both branches (method
notes §8.4), and ``reconstruct --method neuropictor``.

The conditional branch uses the fMRI context, the unconditional one the "" text context; the ControlNet
residuals made from the fMRI feature map are added in both, so guidance acts on the semantics only.
The context comes from the targets the reconstruct stage reads (``decode`` writes the model's own
context to decoded.hdf5; ``--oracle`` puts the true caption features in its place), the feature map from
the subject's test voxels through the trained run (``neuropictor.run``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...config.schema import Config
from ...config.sections.neuropictor import NeuroPictorConfig
from ...errors import ConfigError, DataError
from ...sampling.methods import Reconstructor, Setting
from .controlnet import noise_prediction


class NeuroPictorSampler:
    """``pipe(context (T, D), cmap (C, h, w), seed)`` → (R, 3, H, W) images in [0, 1]."""

    def __init__(self, components, model, config: NeuroPictorConfig | None = None, repeats: int = 1):
        from diffusers import DDIMScheduler

        self.components, self.model, self.config, self.repeats = (
            components,
            model,
            config or NeuroPictorConfig(),
            int(repeats),
        )
        self.scheduler = DDIMScheduler.from_config(components.scheduler.config)
        self.device = components.device
        self._uncond: torch.Tensor | None = None

    @property
    def uncond(self) -> torch.Tensor:
        if self._uncond is None:
            self._uncond = self.components.unconditional(1).float().to(self.device)
        return self._uncond

    @torch.no_grad()
    def __call__(self, context: torch.Tensor, cmap: torch.Tensor, seed: int = 42) -> torch.Tensor:
        cfg, R, unet = self.config, self.repeats, self.components.unet
        if context.ndim != 2 or context.shape != self.uncond.shape[1:]:
            raise DataError(
                f"context has shape {tuple(context.shape)}, the stack's "
                f"text context is {tuple(self.uncond.shape[1:])}"
            )
        gen = torch.Generator().manual_seed(int(seed))
        x = (
            torch.randn((R, *self.components.latent_shape), generator=gen).to(self.device)
            * self.scheduler.init_noise_sigma
        )
        ctx = context.float().to(self.device).expand(R, -1, -1)
        cm = cmap.float().to(self.device).expand(R, -1, -1, -1)
        if cfg.cfg_scale > 1:
            ctx, cm = torch.cat([self.uncond.expand(R, -1, -1), ctx]), torch.cat([cm, cm])
        self.scheduler.set_timesteps(cfg.steps)
        for t in self.scheduler.timesteps:
            xin = torch.cat([x, x]) if cfg.cfg_scale > 1 else x
            eps = noise_prediction(unet, self.model, xin, t, ctx, cm, cfg.control_scale)
            if cfg.cfg_scale > 1:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + cfg.cfg_scale * (eps_c - eps_u)
            x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        vae = self.components.vae
        image = vae.decode((x / self.components.latent_scale).to(vae.dtype)).sample.float()
        return (image / 2 + 0.5).clamp(0, 1)


class NeuroPictorMethod:
    name = "neuropictor"
    sweep_options: tuple[str, ...] = ()

    def settings(self, config: Config, sweep) -> list[Setting]:
        from ..minddiffuser.method import no_sweep

        no_sweep(self.name, sweep)
        np_ = config.neuropictor
        name = f"steps={np_.steps}_cfg={np_.cfg_scale:g}"
        return [Setting(name, {"steps": np_.steps, "cfg_scale": np_.cfg_scale}, config.model_copy(deep=True))]

    def needs(self, setting: Setting) -> tuple[str, ...]:
        return ("c",)

    def fingerprint(self, config: Config) -> dict[str, Any]:
        np_ = config.neuropictor.model_dump()
        return {
            "seed": config.seed,
            "zoo": config.zoo.model_dump(),
            "neuropictor": {k: np_[k] for k in ("steps", "cfg_scale", "control_scale", "run")},
            "repeats": config.sampler.repeats,
            "image_seed": config.sampler.image_seed,
            "data": config.data.model_dump(),
        }

    def build(self, components, setting: Setting, shapes: Mapping[str, tuple[int, ...]]) -> Reconstructor:
        from .runner import TestVoxels, fmri_outputs, load_run

        cfg = setting.config
        if cfg.neuropictor.run is None:
            raise ConfigError(
                "no trained NeuroPictor run",
                where="neuropictor.run",
                fix="reconstruct the run folder itself (its config.yaml "
                "names it), or --set neuropictor.run=RUN",
            )
        if "c" not in shapes:
            raise DataError(
                "the targets hold no 'c'",
                fix="decode the NeuroPictor run first (`neuraldiffuser decode RUN`)",
            )
        manifest, model = load_run(cfg.neuropictor.run, components.device)
        voxels = TestVoxels(cfg, cfg.neuropictor.run, manifest["subject"])
        pipe = NeuroPictorSampler(components, model, cfg.neuropictor, cfg.sampler.repeats)
        by_index = cfg.sampler.image_seed == "by_index"

        def reconstruct(targets: Mapping[str, torch.Tensor], image: int) -> torch.Tensor:
            _, cmap = fmri_outputs(model, manifest["subject"], voxels(image), components.device)
            return pipe(targets["c"], cmap, seed=cfg.seed + image if by_index else cfg.seed)

        return reconstruct
