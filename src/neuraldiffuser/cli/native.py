"""`evaluate --native`: the small-data protocol's table (evaluation/native.py)."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def evaluate_native(recon_dirs: list[Path], truth: Path, subject: str | None, out: Path, config) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..data import open_dataset
    from ..evaluation.native import NATIVE_METRICS, native_evaluation
    from ..evaluation.recon import find_recon_folders
    from ..utils.io import atomic_write_json

    ds = open_dataset(truth, config.data.layout, config.data.captions)
    doc = native_evaluation(
        find_recon_folders(recon_dirs), ds, subject, config.data.test_repeats, config.data.test_order
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "native.json", doc)
    p = doc["protocol"]
    table = Table(
        "method",
        "setting",
        "folder",
        *NATIVE_METRICS,
        title=f"native protocol: {p['size'][1]}×{p['size'][0]} {p['mode']}, {len(doc['images'])} "
        f"{'test' if p['ridge_alpha'] is not None else 'held-out'} images",
    )
    for r in doc["rows"]:
        folder = os.path.relpath(r["recon_dir"]) if "recon_dir" in r else "—"
        table.add_row(
            r["method"], r["setting"], folder, *[f"{r['values'][k]['mean']:.4f}" for k in NATIVE_METRICS]
        )
    console = Console()
    Console(width=max(console.width, 150)).print(table)  # method and folder names whole, never cut to '…'
    typer.echo(f"wrote {out / 'native.json'}")
