"""Write a self-contained HTML report of one or more runs.

Reads: RUN_DIR(s) with metrics and reconstructions.
Writes: report.html with figures.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "report"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 7)
