"""Extract target features (z, c, g) for every stimulus image.

Reads: DATASET images and captions, the component models (zoo or SD v1.4 + CLIP).
Writes: a chunked target store (targets.hdf5) that resumes where it stopped.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "extract"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 5)
