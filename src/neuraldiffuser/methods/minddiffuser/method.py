"""``reconstruct --method minddiffuser``: the two stages behind the reconstruction-method interface.

One setting per run, named after what changes the images most (``iterations=300_optimise=z``);
``--set minddiffuser.iterations=0`` gives stage 1 alone (the paper's "without control" row) in its own
folder. R = ``sampler.repeats`` reconstructions per image (``--repeats``), each refined separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...config.schema import Config
from ...errors import ConfigError, DataError
from ...sampling.methods import Reconstructor, Setting


def no_sweep(name: str, sweep: Mapping[str, Sequence[float]]) -> None:
    if any(sweep.values()):
        raise ConfigError(
            f"method '{name}' has no --kappa/--eta sweep", fix=f"set its options with --set {name}.<key>=..."
        )


class MindDiffuserMethod:
    name = "minddiffuser"
    sweep_options: tuple[str, ...] = ()

    def settings(self, config: Config, sweep: Mapping[str, Sequence[float]]) -> list[Setting]:
        no_sweep(self.name, sweep)
        md = config.minddiffuser
        name = f"iterations={md.iterations}_optimise={md.optimise}"
        return [
            Setting(
                name, {"iterations": md.iterations, "optimise": md.optimise}, config.model_copy(deep=True)
            )
        ]

    def needs(self, setting: Setting) -> tuple[str, ...]:
        return ("c", "z", "g") if setting.config.minddiffuser.iterations > 0 else ("c", "z")

    def fingerprint(self, config: Config) -> dict[str, Any]:
        return {
            "seed": config.seed,
            "zoo": config.zoo.model_dump(),
            "minddiffuser": config.minddiffuser.model_dump(),
            "repeats": config.sampler.repeats,
            "image_seed": config.sampler.image_seed,
        }

    def build(self, components, setting: Setting, shapes: Mapping[str, tuple[int, ...]]) -> Reconstructor:
        from .sampler import MindDiffuserSampler

        cfg = setting.config
        check_shapes(components, cfg, shapes, self.needs(setting))
        sampler = MindDiffuserSampler(components, cfg.minddiffuser, cfg.sampler.repeats)
        by_index = cfg.sampler.image_seed == "by_index"

        def reconstruct(targets: Mapping[str, torch.Tensor], image: int) -> torch.Tensor:
            return sampler(
                targets["c"], targets["z"], targets.get("g"), seed=cfg.seed + image if by_index else cfg.seed
            )

        return reconstruct


def check_shapes(
    components, config: Config, shapes: Mapping[str, tuple[int, ...]], needs: Sequence[str]
) -> None:
    """z must match the stack's latents, c its cross-attention width (any token count), g
    its guidance tower."""
    for key in needs:
        if key not in shapes:
            raise DataError(
                f"the targets hold no '{key}'",
                fix="decode with `neuraldiffuser decode RUN` of a MindDiffuser run",
            )
    if tuple(shapes["z"]) != tuple(components.latent_shape):
        raise DataError(
            f"z targets have shape {tuple(shapes['z'])}, the stack "
            f"({components.path}) expects {tuple(components.latent_shape)}",
            fix="reconstruct with the zoo the targets were extracted with (zoo.path)",
        )
    cross = components.unet.config.cross_attention_dim
    if len(shapes["c"]) != 2 or shapes["c"][1] != cross:
        raise DataError(
            f"c targets have shape {tuple(shapes['c'])}, the UNet expects (tokens, {cross})",
            fix="use the zoo the targets were made with",
        )
    if "g" in needs:
        enc = components.guidance
        expected = (len(enc.layers), enc.tokens, enc.width)
        if tuple(shapes["g"]) != expected:
            raise DataError(
                f"g targets have shape {tuple(shapes['g'])}, the guidance tower gives {expected}",
                fix="use the zoo the targets were made with",
            )
        if len(config.minddiffuser.layer_boosts) != len(enc.layers):
            raise ConfigError(
                f"{len(config.minddiffuser.layer_boosts)} layer boosts for {len(enc.layers)} guidance layers",
                where="minddiffuser.layer_boosts",
                fix="give one boost per zoo.guidance_layers entry",
            )
