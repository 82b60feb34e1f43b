"""Decode c, g and z for the target subject's test images (or, with --holdout, the images the run held out).

Reads: RUN_DIR (trained decoders and its config.yaml), DATASET test betas.
Writes: decoded.hdf5 with the test-image order (and decoded_ridge.hdf5 with --ridge), plus the resolved
config; with --holdout, decoded_holdout.hdf5 (and decoded_holdout_ridge.hdf5): validation targets for choosing
κ, η. A run of a comparison method (`train --method minddiffuser|neuropictor`) is decoded
by that method's code.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, SetOpt

NAME = "decode"


def command(
    run_dir: Path = typer.Argument(..., help="Run folder written by `neuraldiffuser train`."),
    out: Path = typer.Option(None, "--out", "-o", help="Decoded store (default: RUN_DIR/decoded.hdf5)."),
    dataset: Path = typer.Option(
        None, "--dataset", help="Dataset folder (default: the one the run was trained on)."
    ),
    ridge: bool = typer.Option(
        False, "--ridge", help="Also decode with the ridge baseline (decoded_ridge.hdf5 beside OUT)."
    ),
    holdout: bool = typer.Option(
        False,
        "--holdout",
        help="Decode the training images the run held out (data.holdout_images), not the test set.",
    ),
    config: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from ..config import load_config, parse_overrides, save_config
    from ..config.paths import absolute_paths
    from ..errors import ConfigError
    from ..training.decode import decode_holdout, decode_test
    from ..utils.outputs import check_output

    base = Path(run_dir) / "config.yaml"
    if not base.is_file():
        from ..errors import ModelLoadError

        raise ModelLoadError(
            "no config.yaml", where=str(run_dir), fix="give a run folder written by `neuraldiffuser train`"
        )
    cfg = absolute_paths(load_config(files=[base, *config], overrides=parse_overrides(overrides)))
    typer.echo(
        f"settings: {base} (the run's own)"
        f"{' + ' + ', '.join(map(str, config)) if config else ''}{' + --set' if overrides else ''}",
        err=True,
    )
    if dataset is not None:
        cfg.data.path = str(Path(dataset).absolute())
    stem = "decoded_holdout" if holdout else "decoded"
    out = check_output(out or Path(run_dir) / f"{stem}.hdf5", folder=False, what="decoded store")
    decode = decode_holdout if holdout else decode_test
    from ..methods import run_method

    method = run_method(run_dir)
    if method is not None:
        from ..methods.cli import decode_method

        if ridge or holdout:
            raise ConfigError(
                f"--{'ridge' if ridge else 'holdout'} decodes NeuralDiffuser runs; this is a {method} run",
                where=str(run_dir),
            )
        paths = [decode_method(method, cfg, run_dir, out)]
    else:
        _check_subject(cfg, Path(run_dir))
        paths = [decode(cfg, run_dir, out)]
    if method is None and (ridge or cfg.decode.ridge):
        paths.append(decode(cfg, run_dir, out.with_name(f"{stem}_ridge.hdf5"), method="ridge"))
    save_config(cfg, out.parent, name=f"{out.stem}.config.yaml")
    for p in paths:
        typer.echo(str(p))


def _check_subject(cfg, run_dir: Path) -> None:
    """The decoders decode the subject they were fine-tuned on; a different data.subject is
    refused, not ignored."""
    from ..errors import ConfigError
    from ..training.decode import read_manifest

    trained = read_manifest(run_dir)["subject"]
    if cfg.data.subject != trained:
        raise ConfigError(
            f"data.subject is {cfg.data.subject} but the run's decoders were trained for {trained}",
            where=str(run_dir / "decoders" / "manifest.json"),
            fix=f"decode a run trained on {cfg.data.subject}, or drop the override",
        )
