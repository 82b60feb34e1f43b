"""Sampler settings recommended by a zoo folder (``<zoo>/sampler_defaults.json``), used for the
keys a user left unset.

The sampler's class defaults are the paper's (SD v1.4: strength 0.75, κ 3e5, η 0.2). A small stack such as the
shipped mini zoo needs others (κ 3e5 ruins its images), so the zoo folder carries them, and ``Config()`` with
that zoo is coherent without a preset. Presets, YAML files and ``--set`` always win: only keys nobody set are
filled. Hub ids carry no file, so they keep the class defaults.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

FILE = "sampler_defaults.json"
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "zoo" / "weights"


def zoo_folder(spec: str) -> Path | None:
    """The local folder of a zoo spec ('builtin:<name>' or a path), or None for a hub id."""
    path = BUILTIN_DIR / spec.split(":", 1)[1] if spec.startswith("builtin:") else Path(spec)
    return path if path.is_dir() else None


@lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int) -> dict[str, Any]:
    from .sections.sampler import SamplerConfig

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the zoo's sampler defaults ({exc})", where=path) from None
    values = doc.get("sampler", {}) if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        raise ConfigError('expected {"sampler": {key: value, ...}}', where=path)
    unknown = sorted(set(values) - set(SamplerConfig.model_fields))
    if unknown:
        raise ConfigError(
            f"unknown sampler key(s) {unknown}",
            where=path,
            fix="use keys of the sampler section (docs/config.md)",
        )
    return values


def sampler_defaults(spec: str) -> dict[str, Any]:
    """The zoo's recommended sampler settings ({} when it has none)."""
    folder = zoo_folder(spec)
    path = folder / FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    return dict(_read(str(path), path.stat().st_mtime_ns))


def fill_sampler(config) -> None:
    """Give ``config.sampler`` the zoo's recommended value for every key that was not set explicitly."""
    from .sections.sampler import SamplerConfig

    defaults = sampler_defaults(config.zoo.path)
    unset = {k: v for k, v in defaults.items() if k not in config.sampler.model_fields_set}
    if not unset:
        return
    explicit = config.sampler.model_dump(include=config.sampler.model_fields_set)
    try:
        sampler = SamplerConfig.model_validate({**unset, **explicit})
    except ValueError as exc:
        from ..utils.validation import pydantic_message

        raise ConfigError(pydantic_message(exc), where=f"{config.zoo.path}/{FILE}") from None
    object.__setattr__(config, "sampler", sampler)  # inside the model validator: no second validation round
