"""Score anyone's reconstructions with MindEye2's protocol: folders of images or side-by-side
strips, any resolution.

Reads: RECON_DIR(s) named <index>.png or <index>_r<repeat>.png (or, with --strips K, one strip per image:
K equal tiles, tile --truth-tile the stimulus, the rest repeats); the stimuli from --truth (an image folder
named <index>.png, an .hdf5/.npy array whose row i is image i, one of our datasets, or 'strips').
Writes: OUT/metrics.json (per-image values, guided − unguided style paired comparisons of the folders
against the first or --baseline), OUT/metrics.csv, OUT/report.html, OUT/evaluate_config.yaml.
A metric whose weights are absent is written as unavailable with the reason. See docs/evaluation.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, PresetOpt, SetOpt, resolve

NAME = "evaluate-images"


def command(
    recon_dirs: list[Path] = typer.Argument(
        ..., help="Folder(s) of reconstructions; the first is the baseline of the paired comparison."
    ),
    truth: str = typer.Option(
        None,
        "--truth",
        "-t",
        help="Stimuli: image folder, .hdf5/.npy array, dataset folder, or 'strips' (default with --strips).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    strips: int = typer.Option(None, "--strips", help="Each file is a strip of K equal tiles side by side."),
    truth_tile: str = typer.Option(
        "0", "--truth-tile", help="Tile holding the stimulus in a strip, or 'none' (all tiles are repeats)."
    ),
    truth_key: str = typer.Option(
        None, "--truth-key", help="HDF5 dataset with the stimuli (default: the file's only 4-D dataset)."
    ),
    label: list[str] = typer.Option(
        [], "--label", help="Name of each folder in the tables (repeatable, in order; default: folder names)."
    ),
    baseline: str = typer.Option(
        None, "--baseline", help="Label the other folders are compared with (default: the first)."
    ),
    method: str = typer.Option("reconstructions", "--method", help="Method name written in the rows."),
    subset: Path = typer.Option(
        None,
        "--subset",
        help="Score only these image indices (.npy or text), e.g. the 982 shared test images.",
    ),
    blurry: list[Path] = typer.Option(
        [],
        "--blurry",
        help="Blurry reconstructions, one folder per RECON_DIR: "
        "score blend×refined + (1−blend)×blurry (MindEye2).",
    ),
    blend: float = typer.Option(
        0.75, "--blend", help="Weight of the refined image when --blurry is given (MindEye2: 0.75)."
    ),
    policy: str = typer.Option(
        "repeat",
        "--policy",
        help="Headline row: 'repeat' (repeat --set evaluate.table_repeat, default 0) or 'mean' over repeats.",
    ),
    subject: str = typer.Option(
        None, "--subject", help="Subject for brain correlation (only with a dataset as --truth)."
    ),
    metrics: str = typer.Option(
        None, "--metrics", help="Comma-separated metric names or groups all/paper/embedded."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
    preset: str = PresetOpt,
    config_files: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from rich.console import Console

    from ..errors import ConfigError
    from ..evaluation.images import ImageScoring, evaluate_images

    if metrics:
        overrides = [
            *overrides,
            f"evaluate.metrics=[{', '.join(repr(m.strip()) for m in metrics.split(','))}]",
        ]
    config = resolve(preset, config_files, overrides)
    if truth_tile.lower() == "none":
        tile = None
    elif truth_tile.lstrip("-").isdigit():
        tile = int(truth_tile)
    else:
        raise ConfigError(f"--truth-tile {truth_tile!r}", fix="give a tile number (0 = leftmost) or 'none'")
    opts = ImageScoring(
        strips=strips,
        truth_tile=tile,
        truth_key=truth_key,
        labels=label,
        method=method,
        subset=str(subset) if subset else None,
        blurry=[str(b) for b in blurry],
        blend=blend,
        baseline=baseline,
        policy=policy,
        subject=subject,
    )
    doc = evaluate_images(
        recon_dirs, truth if truth is not None else "strips", config, out, opts, report=not no_report
    )
    print_image_scores(Console(), doc)


def print_image_scores(console, doc: dict) -> None:
    """The headline rows, the paired differences with their intervals, and what was unavailable."""
    from rich.table import Table

    from ..evaluation.files import cell, metric_columns

    want = "mean" if doc["protocol"]["headline_policy"] == "mean" else "repeat"
    rows = [r for r in doc["rows"] if r["policy"].startswith(want)]
    cols = [c for c in metric_columns(rows) if not all(isinstance(r["values"].get(c), dict) for r in rows)]
    table = Table("setting", "policy", "N", *cols)
    for r in rows:
        table.add_row(
            r["setting"], r["policy"], str(r["n_images"]), *[cell(r["values"].get(c)) for c in cols]
        )
    console.print(table)
    for c in doc["comparisons"]:
        diffs = ", ".join(
            f"{k} {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"
            for k, d in c["differences"].items()
        )
        console.print(f"{c['setting']} − {c['baseline']} ({c['policy']}): {diffs}", soft_wrap=True)
    for name, info in doc["metrics"].items():
        if info.get("unavailable"):
            console.print(f"[yellow]unavailable[/] {name}: {info['unavailable']}", soft_wrap=True)
    console.print(
        f"wrote {Path(doc['out_dir']) / 'metrics.json'}, metrics.csv"
        + (" and report.html" if doc.get("report") else "")
    )
