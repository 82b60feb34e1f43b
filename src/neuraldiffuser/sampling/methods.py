"""Reconstruction methods behind one interface, so `reconstruct` runs any of them the same way.

A method turns a resolved config and the command line's sweep options into settings (one output
folder each), says which targets it reads, and builds a per-setting reconstructor:
``reconstructor(targets: {key: tensor}, image: int) -> (R, 3, H, W) images in [0, 1]``.
Methods are registered by name with an import path in ``sampling/registry.py``, so a method's heavy modules
load only when it is chosen. Other packages add theirs with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..config.schema import Config
from ..errors import ConfigError, DataError
from .registry import METHODS, get_method, register  # noqa: F401  (the one registry; re-exported here)

Reconstructor = Callable[[Mapping[str, torch.Tensor], int], torch.Tensor]


@dataclass(frozen=True)
class Setting:
    """One output folder: its name, the parameters that set it apart, and the config it runs with."""

    name: str
    params: dict[str, Any]
    config: Config = field(compare=False)


class Method(Protocol):
    name: str
    sweep_options: tuple[str, ...]

    def settings(self, config: Config, sweep: Mapping[str, Sequence[float]]) -> list[Setting]: ...

    def needs(self, setting: Setting) -> tuple[str, ...]: ...

    def fingerprint(self, config: Config) -> dict[str, Any]: ...

    def build(self, components, setting: Setting, shapes: Mapping[str, tuple[int, ...]]) -> Reconstructor: ...


def format_number(x: float) -> str:
    """3e5 → '3e+05', 0.2 → '0.2', 0 → '0' (folder names of sweep settings)."""
    return "0" if x == 0 else f"{x:.3g}"


class NeuralDiffuserMethod:
    """The guided sampler; settings sweep κ × η (κ = 0 forces η = 0, as the released code does)."""

    name = "neuraldiffuser"
    sweep_options = ("kappa", "eta")

    def settings(self, config: Config, sweep: Mapping[str, Sequence[float]]) -> list[Setting]:
        unknown = set(sweep) - set(self.sweep_options)
        if unknown:
            raise ConfigError(
                f"method '{self.name}' has no sweep option {sorted(unknown)}",
                fix=f"use {', '.join(self.sweep_options)}",
            )
        kappas = list(sweep.get("kappa") or [config.sampler.kappa])
        etas = list(sweep.get("eta") or [config.sampler.eta])
        out: dict[str, Setting] = {}
        for kappa in kappas:
            for eta in etas if kappa > 0 else [0.0]:
                name = f"kappa={format_number(kappa)}_eta={format_number(eta)}"
                cfg = config.model_copy(deep=True)
                try:
                    cfg.sampler.kappa, cfg.sampler.eta = float(kappa), float(eta)
                except ValueError as exc:
                    raise ConfigError(
                        f"sweep value out of range ({exc.errors()[0]['msg']})", where=name
                    ) from None
                out.setdefault(name, Setting(name, {"kappa": float(kappa), "eta": float(eta)}, cfg))
        return list(out.values())

    def needs(self, setting: Setting) -> tuple[str, ...]:
        return ("c", "z", "g") if setting.config.sampler.kappa > 0 else ("c", "z")

    def fingerprint(self, config: Config) -> dict[str, Any]:
        return {"seed": config.seed, "zoo": config.zoo.model_dump(), "sampler": config.sampler.model_dump()}

    def build(self, components, setting: Setting, shapes: Mapping[str, tuple[int, ...]]) -> Reconstructor:
        from .sampler import NeuralDiffuserSampler

        check_shapes(components, setting, shapes, self.needs(setting))
        return SamplerReconstructor(NeuralDiffuserSampler(components, setting.config.sampler), setting.config)


class SamplerReconstructor:
    """The NeuralDiffuser sampler as a reconstructor: one image per call, or
    ``images_per_call`` via ``batch``."""

    def __init__(self, sampler, config: Config):
        self.sampler, self.seed = sampler, config.seed
        self.by_index = config.sampler.image_seed == "by_index"
        self.images_per_call = config.sampler.image_batch

    def image_seed(self, image: int) -> int:
        return self.seed + image if self.by_index else self.seed

    def __call__(self, targets: Mapping[str, torch.Tensor], image: int) -> torch.Tensor:
        return self.sampler(targets["c"], targets["z"], targets.get("g"), seed=self.image_seed(image))

    def batch(
        self, targets: Sequence[Mapping[str, torch.Tensor]], images: Sequence[int]
    ) -> list[torch.Tensor]:
        return self.sampler.batch(
            [t["c"] for t in targets],
            [t["z"] for t in targets],
            [t.get("g") for t in targets],
            [self.image_seed(im) for im in images],
        )


def sample_rows(
    reconstructor, targets: Sequence[Mapping[str, torch.Tensor]], images: Sequence[int]
) -> list[torch.Tensor]:
    """One call's images, (R, 3, H, W) in [0, 1] each: together through ``batch`` when there are several,
    else one call. The ``reconstruct`` stage and ``NeuralDiffuserPipeline.generate`` both sample this way."""
    if len(images) > 1:
        return reconstructor.batch(targets, images)
    return [reconstructor(targets[0], images[0])]


def check_shapes(
    components, setting: Setting, shapes: Mapping[str, tuple[int, ...]], needs: Sequence[str]
) -> None:
    """Targets must fit the stack: z its latent shape, c its cross-attention width, g its guidance tower."""
    expected: dict[str, tuple[Any, ...]] = {"z": tuple(components.latent_shape)}
    expected["c"] = (shapes.get("c", (None,))[0], components.unet.config.cross_attention_dim)
    if "g" in needs:
        enc = components.guidance
        expected["g"] = (len(enc.layers), enc.tokens, enc.width)
        if len(setting.config.sampler.layer_boosts) != len(enc.layers):
            raise ConfigError(
                f"{len(setting.config.sampler.layer_boosts)} layer "
                f"boosts for {len(enc.layers)} guidance layers",
                where="sampler.layer_boosts",
                fix="give one boost per zoo.guidance_layers entry",
            )
    for key in needs:
        if key not in shapes:
            raise DataError(
                f"the targets hold no '{key}'",
                fix=f"decode {key}" + (", or reconstruct with --kappa 0" if key == "g" else ""),
            )
        if tuple(shapes[key]) != expected[key]:
            raise DataError(
                f"'{key}' targets have shape {tuple(shapes[key])} but "
                f"the stack ({components.path}) expects {expected[key]}",
                fix="reconstruct with the zoo the targets were extracted with (zoo.path)",
            )
