"""Load, merge, validate and save configs."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ..utils.io import atomic_write_text
from .base import unknown_keys
from .schema import Config

PRESET_DIR = Path(__file__).parent / "presets"
PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("config file not found", where=str(path), fix="give an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({exc.__class__.__name__}: {exc})", where=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping, got {type(data).__name__}", where=str(path))
    return data


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["sampler.kappa=3e5", "data.subject=subj02"]`` into a nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value", fix="write e.g. --set sampler.kappa=3e5")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _validate(data: dict[str, Any], source: str) -> Config:
    bad = unknown_keys(Config, data)
    if bad:
        key, guess = bad[0]
        hint = f"did you mean '{guess}'?" if guess else "see docs/config.md for the valid keys"
        raise ConfigError(f"unknown key '{key}'", where=source, fix=hint)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"key '{loc}': {err['msg']} (got {err.get('input')!r})", where=source) from None


def load_config(
    preset: str | None = None,
    files: Iterable[str | Path] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Resolve a config from a preset name, YAML files and overrides, validating every key."""
    data: dict[str, Any] = {}
    sources = []
    if preset is not None:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            from .base import closest

            guess = closest(preset, PRESETS)
            raise ConfigError(
                f"unknown preset '{preset}'",
                fix=f"did you mean '{guess}'?" if guess else f"choose one of {', '.join(PRESETS)}",
            )
        data = deep_merge(data, _read_yaml(path))
        data["preset"] = preset
        sources.append(f"preset {preset}")
    for f in files:
        data = deep_merge(data, _read_yaml(Path(f)))
        sources.append(str(f))
    if overrides:
        data = deep_merge(data, overrides)
        sources.append("overrides")
    return _validate(data, " + ".join(sources) or "defaults")


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_config(config: Config, run_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config into a run folder (atomically)."""
    path = Path(run_dir) / name
    atomic_write_text(path, config_to_yaml(config))
    return path


def load_run_config(run_dir: str | Path, name: str = "config.yaml") -> Config:
    path = Path(run_dir) / name
    return _validate(_read_yaml(path), str(path))
