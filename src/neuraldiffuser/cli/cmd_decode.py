"""Decode c, g and z for the target subject's test images.

Reads: trained decoders, DATASET test betas.
Writes: decoded.hdf5 with the test-image order.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "decode"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 5)
