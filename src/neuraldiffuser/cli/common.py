"""Options shared by the stage commands."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import load_config, parse_overrides
from ..config.schema import Config

PresetOpt = typer.Option(
    None, "--preset", help="Config preset: 'mini' (embedded, CPU) or 'paper' (NSD + SD v1.4)."
)
ConfigOpt = typer.Option(
    [], "--config", "-c", help="YAML config file(s), applied after the preset.", exists=False
)
SetOpt = typer.Option([], "--set", "-s", help="Override one key, e.g. --set sampler.kappa=3e5 (repeatable).")


def resolve(preset: str | None, config_files: list[Path], overrides: list[str]) -> Config:
    """The config of a command, its relative paths made absolute (a saved run config then
    works from anywhere)."""
    from ..config.paths import absolute_paths
    from ..utils.devices import check_device

    config = absolute_paths(
        load_config(preset=preset, files=config_files, overrides=parse_overrides(overrides))
    )
    for section in ("extract", "evaluate", "minddiffuser"):
        check_device(getattr(config, section).device, f"{section}.device")
    return config
