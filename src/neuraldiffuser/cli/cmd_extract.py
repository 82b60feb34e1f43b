"""Extract target features (z, c, g) for every stimulus image.

Reads: DATASET images and captions, the component models (zoo or SD v1.4 + CLIP).
Writes: a chunked target store (targets.hdf5) that resumes where it stopped, and the
resolved config beside it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, PresetOpt, SetOpt, resolve

NAME = "extract"


def command(
    dataset: Path = typer.Argument(..., help="Dataset folder (generic or MindEye2 layout)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Target store to write (default: DATASET/targets.hdf5)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start a new store even if OUT exists (else an unfinished one is resumed)."
    ),
    preset: str = PresetOpt,
    config: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from ..config import save_config
    from ..data import open_dataset
    from ..targets.extract import extract_targets
    from ..utils.outputs import check_output

    cfg = resolve(preset, config, overrides)
    cfg.data.path = str(Path(dataset).absolute())
    ds = open_dataset(dataset, cfg.data.layout, cfg.data.captions)
    out = Path(check_output(out or Path(dataset) / "targets.hdf5", folder=False, what="target store"))
    fresh = overwrite or not out.exists()
    if fresh:  # saved first, so that an unfinished store names the settings that complete it
        save_config(cfg, out.parent, name=f"{out.stem}.config.yaml")
    path = extract_targets(cfg, ds, out, overwrite=overwrite)
    if (
        not fresh
    ):  # a resumed store keeps the config it started with until these settings are known to match it
        save_config(cfg, out.parent, name=f"{out.stem}.config.yaml")
    typer.echo(str(path))
