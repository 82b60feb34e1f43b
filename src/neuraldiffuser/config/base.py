"""Strict config base: unknown keys are errors that name the closest valid key."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section. Unknown keys are rejected (see ``check_keys`` for the message)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def closest(key: str, valid: list[str]) -> str | None:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return match[0] if match else None


def unknown_keys(model: type[BaseModel], data: Any, prefix: str = "") -> list[tuple[str, str | None]]:
    """List (dotted key, closest valid key) for every key in ``data`` that ``model`` does not define."""
    if not isinstance(data, dict):
        return []
    out: list[tuple[str, str | None]] = []
    fields = model.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            guess = closest(str(key), list(fields))
            out.append((dotted, f"{prefix}{guess}" if guess else None))
            continue
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(unknown_keys(annotation, value, prefix=f"{dotted}."))
    return out
