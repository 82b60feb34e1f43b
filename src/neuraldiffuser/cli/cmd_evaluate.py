"""Score reconstructions with the field's metrics.

Reads: RECON_DIR and the ground-truth images.
Writes: metrics.json and metrics.csv.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "evaluate"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 7)
