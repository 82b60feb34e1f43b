"""Mini model zoo: train the small Stable-Diffusion-shaped stack on an image+caption dataset, and measure it.

Reads: DATASET images and captions (any layout `open_dataset` reads).
Writes: OUT in diffusers' Stable Diffusion layout (vae/, unet/, scheduler/, tokenizer/, text_encoder/, clip/),
with train_settings.yaml, train_log.json and config.yaml; `zoo evaluate` writes quality.json.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from .common import ConfigOpt, PresetOpt, SetOpt, resolve

NAME = "zoo"

app = typer.Typer(help=__doc__, no_args_is_help=True)


@app.command("train")
def train(
    images: Path = typer.Option(
        ...,
        "--images",
        help="Dataset folder with images and captions (e.g. from `simulate --preset scenes`).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output stack folder; rerun the same command to resume."
    ),
    settings_file: Path = typer.Option(
        None, "--settings", help="YAML file of trainer settings (see zoo/train/settings.py)."
    ),
    train_set: list[str] = typer.Option(
        [], "--train-set", help="Override one trainer setting, e.g. --train-set unet.steps=2000 (repeatable)."
    ),
    parts: str = typer.Option(
        "autoencoder,decoder,clip,unet",
        "--parts",
        help="Comma-separated parts to train (a finished part is skipped).",
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N images."),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine).",
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        help="Data-parallel processes for the UNet (one thread each; same result as one process).",
    ),
    init_from: str = typer.Option(
        None,
        "--init-from",
        help="Adapt a trained stack (e.g. builtin:insilico-64) to these images: every part fine-tuned.",
    ),
    minutes: float = typer.Option(
        5.0, "--minutes", min=0.01, help="With --init-from: wall-time budget of the whole adaptation."
    ),
    preset: str = PresetOpt,
    config_files: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """Train the autoencoder, the mini CLIP and the text-conditioned UNet (each resumable); or, with
    --init-from, adapt a trained stack to a new image domain in --minutes (training stimuli only;
    docs/own-data.md)."""
    from ..utils.outputs import check_output

    check_output(out, folder=True, what="stack")
    if init_from is not None:
        from ..zoo.train.adapt import adapt_zoo

        if threads:
            import torch

            torch.set_num_threads(threads)
        log = adapt_zoo(images, out, init_from, minutes, seed=0)
        typer.echo(f"adapted {init_from} to {log['data']['n_images']} images in {out}; {log['quality_line']}")
        return
    from ..config import parse_overrides, save_config
    from ..zoo.train.pipeline import train_zoo
    from ..zoo.train.settings import load_settings

    cfg = resolve(preset, config_files, overrides)
    settings = load_settings(settings_file, parse_overrides(train_set))
    command = _command_line(images, out, settings_file, train_set, parts, limit, threads, processes)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    log = train_zoo(
        images,
        out,
        settings,
        parts=[p.strip() for p in parts.split(",") if p.strip()],
        limit=limit,
        command=command,
        threads=threads,
        processes=processes,
    )
    for part, info in log["parts"].items():
        typer.echo(f"{part}: {info['steps']} steps, {info['seconds']:.0f} s")
    if "total_mb" in log:
        typer.echo(f"stack at {out}: {log['total_mb']:.1f} MB")


def _command_line(images, out, settings_file, train_set, parts, limit, threads, processes) -> str:
    """The command as it would be typed again (recorded in train_log.json and the zoo's README)."""
    args = ["neuraldiffuser", "zoo", "train", "--images", str(images), "--out", str(out)]
    if settings_file:
        args += ["--settings", str(settings_file)]
    for item in train_set:
        args += ["--train-set", item]
    if parts != "autoencoder,decoder,clip,unet":
        args += ["--parts", parts]
    if limit:
        args += ["--limit", str(limit)]
    if threads:
        args += ["--threads", str(threads)]
    if processes > 1:
        args += ["--processes", str(processes)]
    return " ".join(shlex.quote(a) for a in args)


@app.command("evaluate")
def evaluate(
    images: Path = typer.Option(
        ..., "--images", help="Held-out dataset folder (scenes the zoo was not trained on)."
    ),
    zoo: str = typer.Option(
        None, "--zoo", help="Stack folder or builtin:<name> (default: zoo.path of the config)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where to write quality.json (default: <zoo>/quality.json)."
    ),
    n: int = typer.Option(100, "--n", min=1, help="Held-out images used by each measure."),
    seed: int = typer.Option(0, "--seed", help="Seed of the samplers' noise."),
    preset: str = PresetOpt,
    config_files: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """Measure a stack on held-out scenes: reconstruction SSIM, retrieval, text-to-image, img2img
    (guided and not)."""
    from ..sampling.sampler import NeuralDiffuserSampler
    from ..utils.outputs import check_output
    from ..zoo.loader import resolve_path
    from ..zoo.train.quality import measure_quality

    cfg = resolve(preset, config_files, overrides)
    zoo_cfg = cfg.zoo.model_copy(update={"path": zoo}) if zoo else cfg.zoo
    target = check_output(
        out or Path(resolve_path(zoo_cfg.path)) / "quality.json", folder=False, what="quality"
    )
    result = measure_quality(
        zoo_cfg, images, target, n=n, seed=seed, sampler=cfg.sampler, make_sampler=NeuralDiffuserSampler
    )
    for key, value in result["summary"].items():
        typer.echo(f"{key}: {value}")
    typer.echo(f"wrote {target}")
