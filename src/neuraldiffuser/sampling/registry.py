"""The one registry of reconstruction methods: name → 'package.module:Class', and which of them train runs.

Kept free of heavy imports, so the command line and ``methods.run_method`` can consult it cheaply; a
method's modules load only when :func:`get_method` builds it. Other packages add theirs with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError

METHODS: dict[str, str] = {
    "neuraldiffuser": "neuraldiffuser.sampling.methods:NeuralDiffuserMethod",
    # comparison methods (docs/methods.md)
    "ridge": "neuraldiffuser.methods.ridge:RidgeMethod",
    "minddiffuser": "neuraldiffuser.methods.minddiffuser.method:MindDiffuserMethod",
    "neuropictor": "neuraldiffuser.methods.neuropictor.pipeline:NeuroPictorMethod",
}

#: Methods that train their own run folder (``train --method NAME``; ``decode`` dispatches on
#: the run's manifest).
TRAINED: set[str] = {"minddiffuser", "neuropictor"}


def register(name: str, target: str, trains: bool = False) -> None:
    """Make ``--method name`` load ``target`` ('package.module:ClassName', instantiated without arguments)."""
    if ":" not in target:
        raise ConfigError(
            f"method target {target!r} is not 'package.module:ClassName'", where=f"register({name!r})"
        )
    METHODS[name] = target
    if trains:
        TRAINED.add(name)


def trained_methods() -> tuple[str, ...]:
    return tuple(sorted(TRAINED))


def get_method(name: str) -> Any:
    """An instance of the registered method ``name``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'", fix=f"choose one of {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"method '{name}' cannot be loaded from {METHODS[name]!r} ({exc})",
            fix="register it with the right 'package.module:ClassName'",
        ) from None
