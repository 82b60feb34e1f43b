"""Simulate the in-silico NSD: procedural scenes, captions and multi-subject fMRI with known ground truth.

Reads: nothing (a preset and a seed).
Writes: OUT in the generic layout and, with --mindeye2, MindEye2's NSD layout.
"""

from __future__ import annotations

import typer

from .common import not_built

NAME = "simulate"


def command(ctx: typer.Context) -> None:
    not_built(NAME, 3)
