"""Small conveniences behind the top-level names (``neuraldiffuser.simulate_dataset``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def simulate_dataset(
    out: str | Path, preset: str = "mini", seed: int = 0, layout: str = "generic", **settings: Any
) -> Path:
    """Simulate an in-silico NSD dataset into ``out`` (docs/simulator.md) and return the dataset folder.

    ``preset``: the simulator preset ('mini', 'nsd-like', …); ``layout``: 'generic', 'mindeye2' or 'both';
    ``settings``: any other ``simulate`` config key (e.g. ``noise_scale=0.5``). Open it with
    ``open_dataset(out)``.
    """
    from .config.sections.simulate import SimulateConfig
    from .errors import ConfigError
    from .simulate.run import simulate_dataset
    from .utils.validation import pydantic_message

    try:
        cfg = SimulateConfig.model_validate({"preset": preset, "seed": seed, "layout": layout, **settings})
    except ValueError as exc:
        raise ConfigError(pydantic_message(exc), where="simulate") from None
    simulate_dataset(out, cfg)
    return Path(out)
