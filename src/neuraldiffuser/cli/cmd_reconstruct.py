"""Reconstruct test images from decoded (or, with --oracle, true) targets.

Reads: decoded targets, the component models.
Writes: PNGs per repeat, a strip per image and manifest.json.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "reconstruct"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 6)
