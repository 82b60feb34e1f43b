"""Run the whole pipeline on simulated data in minutes on a CPU, and show the result.

Simulates the mini in-silico NSD (4 subjects), extracts targets with the shipped mini zoo, pretrains the
decoders on subjects 2–4 and fine-tunes them on subject 1, decodes subject 1's shared test images,
reconstructs them with NeuralDiffuser guided (κ > 0) and unguided (κ = 0), evaluates and writes a report.

Reads: nothing (the `mini` preset; the shipped zoo).
Writes: OUT/data (dataset), OUT/targets.hdf5, OUT/decoders/, OUT/decoded.hdf5, OUT/recon/ (PNGs, metrics.json,
metrics.csv), OUT/report.html and OUT/demo_summary.json. Finished stages are reused on the next run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import SetOpt

NAME = "demo"


def command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Demo folder."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete OUT first and run every stage again."),
    overrides: list[str] = SetOpt,
) -> None:
    from ..config import parse_overrides
    from ..demo import print_summary, run_demo
    from ..utils.outputs import check_output

    check_output(out, folder=True, what="demo")
    result = run_demo(out, fresh=fresh, overrides=parse_overrides(overrides))
    print_summary(result)
