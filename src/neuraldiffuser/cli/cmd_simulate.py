"""Simulate the in-silico NSD: procedural scenes, captions and multi-subject fMRI with known ground truth.

Reads: nothing (a simulator preset and a seed; see docs/simulator.md).
Writes: OUT in the generic layout (dataset.json, images.hdf5, captions.json, subjects/<name>/, and
simulator/ with the encoding models, scene records and config.yaml); with --layout mindeye2|both, MindEye2's
NSD layout at OUT/mindeye2 (or at OUT for mindeye2 alone). --preset scenes writes images + captions only.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, SetOpt, resolve

NAME = "simulate"


def command(
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset folder."),
    preset: str = typer.Option(
        None, "--preset", help="Simulator preset: mini (default), small, nsd-like, or scenes (stimuli only)."
    ),
    subjects: int = typer.Option(
        None, "--subjects", min=1, help="Number of subjects (default: the preset's)."
    ),
    seed: int = typer.Option(None, "--seed", min=0, help="Random seed (default: simulate.seed, 0)."),
    n_images: int = typer.Option(
        None, "--n-images", min=1, help="scenes: number of images; others: training images per subject."
    ),
    layout: str = typer.Option(None, "--layout", help="generic, mindeye2 or both (default: generic)."),
    config_files: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from ..config import save_config
    from ..errors import ConfigError
    from ..utils.outputs import check_output

    flags = {"preset": preset, "subjects": subjects, "seed": seed, "n_images": n_images, "layout": layout}
    sim = {k: v for k, v in flags.items() if v is not None}
    cfg = resolve("mini", config_files, [*overrides, *(f"simulate.{k}={v}" for k, v in sim.items())])
    check_output(out, folder=True, what="dataset")
    s = cfg.simulate
    if s.preset == "scenes":
        from ..simulate.scenes import write_scene_dataset

        if s.n_images is None:
            raise ConfigError("--preset scenes needs --n-images", fix="e.g. --n-images 30000")
        root = write_scene_dataset(out, s.n_images, s.seed, size=s.image_size or 64)
        save_config(cfg, root / "simulator")
        typer.echo(f"wrote {s.n_images} scenes to {root}")
        return
    from ..simulate.run import simulate_dataset

    summary = simulate_dataset(out, cfg.simulate)
    save_config(cfg, Path(out) / "simulator")
    typer.echo(summary)
