"""Train fMRI decoders: multi-subject pretraining, then fine-tuning on the target subject.

Reads: DATASET betas, the target store.
Writes: RUN_DIR with config.yaml, logs (tensorboard), atomic checkpoints, decoders/ (final models, scaler,
manifest), ridge/ and summary.json. Launch with `accelerate launch` or `torchrun` for several processes.
With --method minddiffuser or neuropictor it fits/trains that comparison method into RUN_DIR instead
(docs/methods.md); `decode RUN_DIR` and `reconstruct RUN_DIR --method ...` then work the same way.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, PresetOpt, SetOpt, resolve

NAME = "train"


def command(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    targets: Path = typer.Argument(..., help="Target store written by `neuraldiffuser extract`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in OUT exactly where its checkpoints stopped."
    ),
    method: str = typer.Option(
        "neuraldiffuser",
        "--method",
        "-m",
        help="neuraldiffuser (its decoders), minddiffuser or neuropictor (comparison methods).",
    ),
    preset: str = PresetOpt,
    config: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from ..config import save_config
    from ..training.runner import check_resume_config, check_run_dir, make_accelerator, train_decoders
    from ..utils.outputs import check_output, exclusive_output

    cfg = resolve(preset, config, overrides)
    check_output(out, folder=True, what="run")
    if method != "neuraldiffuser":
        from ..methods.cli import train_method

        typer.echo(train_method(method, cfg, dataset, targets, out, resume))
        return
    cfg.data.path = str(Path(dataset).absolute())
    acc = make_accelerator(cfg, out)
    from ..data import open_dataset
    from ..training.autoscale import adapt_to_data

    cfg = adapt_to_data(
        cfg, open_dataset(dataset, cfg.data.layout, cfg.data.captions), verbose=acc.is_main_process
    )  # saved as run
    check_run_dir(out, resume)
    if resume:
        check_resume_config(cfg, out)
    acc.wait_for_everyone()  # every rank has checked the folder before any lock file appears in it
    with exclusive_output(out, folder=True, what="run folder"):
        if acc.is_main_process:
            save_config(cfg, out)
        result = train_decoders(cfg, out, targets, accelerator=acc)
    if acc.is_main_process:
        typer.echo(f"{out}: {', '.join(result['models'])} for {result['subject']}")
