"""Summarise a dataset folder (generic or MindEye2 layout).

Reads: DATASET (dataset.json + images.hdf5 + subjects/, or MindEye2's betas_all_*.hdf5 + wds/ +
coco_images_*.hdf5). Writes: nothing; prints subjects, voxel counts, trials, images, splits, test repeats and
NaN/Inf counts (``--json`` prints the same as JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

NAME = "inspect"


def command(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    layout: str = typer.Option("auto", help="auto, generic or mindeye2."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    no_scan: bool = typer.Option(False, "--no-scan", help="Skip the NaN/Inf scan (it reads every beta)."),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..data import open_dataset
    from ..data.inspect import summarize

    info = summarize(open_dataset(dataset, layout=layout), count_nonfinite=not no_scan)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console()
    console.print(
        f"[bold]{info['root']}[/]  layout={info['layout']}  images={info['images']} "
        f"({info['image_size'][0]}×{info['image_size'][1]})  captioned={info['captioned_images']}"
    )
    table = Table(
        "subject",
        "voxels",
        "sessions",
        "trials",
        "train trials/images",
        "test trials/images",
        "test repeats",
        "NaN/Inf",
        "ROIs",
    )
    for name, s in info["subjects"].items():
        reps = " ".join(f"{k}×:{v}" for k, v in s["test_repeats"].items())
        rois = " ".join(f"{k}:{v}" for k, v in s.get("rois", {}).items()) or "—"
        table.add_row(
            name,
            str(s["voxels"]),
            str(s["sessions"]),
            str(s["trials"]),
            f"{s['train_trials']}/{s['train_images']}",
            f"{s['test_trials']}/{s['test_images']}",
            reps,
            str(s.get("nonfinite", "—")),
            rois,
        )
    console.print(table)
