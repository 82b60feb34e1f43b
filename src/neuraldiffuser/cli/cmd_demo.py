"""Run the whole pipeline on simulated data in minutes on a CPU.

Reads: nothing.
Writes: OUT with the dataset, targets, decoders, reconstructions, metrics and report.html.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "demo"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 9)
