"""Write a self-contained HTML report of one or more evaluated runs: the metrics table with published rows for
context, image grids (stimulus | reconstructions | repeats), the κ×η ablation grid when a sweep exists, and
brain correlation per ROI.

Reads: RUN_DIR(s): metrics.json (found at or below each folder) and the reconstruction folders it names.
Writes: report.html (default: the first RUN_DIR), one file with every figure embedded as a PNG.
"""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "report"


def command(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run folder(s) or metrics.json file(s) written by `neuraldiffuser evaluate`."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
    title: str = typer.Option("Reconstruction report", "--title", help="Title at the top of the report."),
    images: int = typer.Option(6, "--images", min=1, help="Test images shown in each image grid."),
) -> None:
    from ..report.collect import find_metric_files
    from ..report.html import write_report
    from ..utils.outputs import check_output

    find_metric_files(run_dirs)  # a missing run folder is named before the output is checked
    first = run_dirs[0]
    default = (first.parent if first.is_file() else first) / "report.html"
    out = check_output(out or default, folder=False, what="report")
    path = write_report(run_dirs, out, title=title, images=images)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
