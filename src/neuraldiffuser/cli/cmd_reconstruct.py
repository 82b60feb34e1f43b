"""Reconstruct test images from decoded (or, with --oracle, true) targets.

Reads: DECODED_OR_RUN (decoded.hdf5 or the decode run folder holding it; the config.yaml of the run that made
it is the starting config when no --preset/--config is given, and a line on stderr says so), or --oracle
targets.hdf5 (true targets: the upper bound; images are then the decoded file's, or the subject's test set),
the component models (zoo.path), and the DATASET's stimulus images for the strips.
Writes: OUT/<method>/<setting>/ with images/<idx>_r<k>.png (one per repeat), strips/<idx>.png (stimulus |
repeats), records/<idx>.json, manifest.json and config.yaml; one <setting> folder per --kappa × --eta pair
(`kappa=3e+05_eta=0.2`, `_oracle` appended for true targets). Finished images are skipped, so running the same
command again resumes. Shard the images over processes with
`accelerate launch -m neuraldiffuser.cli.main reconstruct ...` (GPUs), or with --workers N on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, PresetOpt, SetOpt, resolve

NAME = "reconstruct"


def command(
    source: Path = typer.Argument(None, help="decoded.hdf5, or the decode run folder that holds it."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Reconstruction root RECON (RECON/<method>/<setting>/ is written)."
    ),
    oracle: Path = typer.Option(
        None, "--oracle", help="True targets.hdf5 to reconstruct from instead of decoded ones."
    ),
    dataset: Path = typer.Option(
        None, "--dataset", "-d", help="Dataset with the stimulus images (default: data.path)."
    ),
    method: str = typer.Option(
        "neuraldiffuser", "--method", "-m", help="Reconstruction method (registered name)."
    ),
    kappa: list[float] = typer.Option(
        [], "--kappa", help="Guidance scale κ; repeat to sweep (default: sampler.kappa)."
    ),
    eta: list[float] = typer.Option(
        [], "--eta", help="Guided fraction η; repeat to sweep (default: sampler.eta)."
    ),
    repeats: int = typer.Option(
        None, "--repeats", "-r", min=1, help="Reconstructions per image (default: sampler.repeats)."
    ),
    images: str = typer.Option(
        None, "--images", help="Comma-separated image indices (default: every test image)."
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 … (default: accelerate's choice)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start the chosen settings again from scratch."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Local CPU processes of one thread each (faster than threads for small models).",
    ),
    preset: str = PresetOpt,
    config_files: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from ..errors import ConfigError
    from ..sampling.runner import make_job, reconstruct, resolve_source, run_config_for
    from ..utils.devices import check_device
    from ..utils.outputs import check_output, exclusive_output

    run_cfg = run_config_for(source) if preset is None and not config_files else None
    if run_cfg is not None:
        config_files = [run_cfg]
        typer.echo(
            f"settings: {run_cfg} (the run that made {source}): settings from the run's config "
            "(dataset, sampler steps, strength, repeats); --preset or --config choose others",
            err=True,
        )
    if repeats is not None:
        overrides = [*overrides, f"sampler.repeats={repeats}"]
    config = resolve(preset, config_files, overrides)
    check_output(out, folder=True, what="reconstruction")
    check_device(device, "--device")
    try:
        wanted = [int(i) for i in images.split(",")] if images else None
    except ValueError:
        raise ConfigError(f"--images {images!r} is not a comma-separated list of integers") from None
    if source is not None:
        resolve_source(source)
    sweep = {k: v for k, v in {"kappa": kappa, "eta": eta}.items() if v}
    with exclusive_output(out, folder=True, what="reconstruction folder"):
        if workers != 1:
            from ..sampling.processes import reconstruct_in_processes

            if device not in (None, "cpu"):
                raise ConfigError(
                    f"--workers runs CPU processes; it cannot be combined with --device {device}",
                    fix="use accelerate launch for GPUs",
                )
            folders = reconstruct_in_processes(
                source,
                out,
                config,
                workers,
                dataset=dataset,
                oracle=oracle,
                method=method,
                sweep=sweep,
                images=wanted,
                limit=limit,
                overwrite=overwrite,
            )
        else:
            job = make_job(source, config, oracle=oracle, dataset=dataset, images=wanted, limit=limit)
            folders = reconstruct(
                job, out, config, method=method, sweep=sweep, overwrite=overwrite, device=device
            )
    for folder in folders:
        typer.echo(f"wrote {folder}")
