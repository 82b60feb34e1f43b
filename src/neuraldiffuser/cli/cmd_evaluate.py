"""Score reconstructions with MindEye2's protocol (PixCorr, SSIM, AlexNet(2/5), InceptionV3, CLIP, EffNet-B,
SwAV), embedded-scale metrics (mini-CLIP, EffNet-Lite0), repeat consistency and brain correlation per ROI.

Reads: RECON_DIR(s) (every <method>/<setting>/manifest.json below them), the DATASET given by --truth
(stimulus images, test betas, simulator/ encoding model), backbone weights from local caches only.
Writes: OUT/metrics.json (per-image values kept), OUT/metrics.csv, OUT/evaluate_config.yaml, OUT/.cache/
(resumable). A metric whose weights are absent is written as unavailable with the reason.
With --native (small data sets): PCC, MSE and whole-map SSIM (Wang/MATLAB σ 1.5 and scikit-image's default) at
the stimulus' own size and mode, beside the mean training image and a voxels → pixels ridge;
writes OUT/native.json.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ConfigOpt, PresetOpt, SetOpt, resolve

NAME = "evaluate"


def command(
    recon_dirs: list[Path] = typer.Argument(
        ..., help="Reconstruction folder(s): RECON, RECON/<method> or RECON/<method>/<setting>."
    ),
    truth: Path = typer.Option(
        None, "--truth", "-t", help="Dataset with the stimuli (default: data.path of the config)."
    ),
    subject: str = typer.Option(
        None,
        "--subject",
        help="Subject whose test betas brain correlation uses (default: each manifest's subject).",
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: the first RECON_DIR)."),
    metrics: str = typer.Option(
        None, "--metrics", help="Comma-separated metric names or groups all/paper/embedded."
    ),
    decoded: Path = typer.Option(
        None, "--decoded", help="decoded.hdf5 (brain-predicted targets) for retrieval."
    ),
    targets: Path = typer.Option(None, "--targets", help="targets.hdf5 (stimulus targets) for retrieval."),
    native: bool = typer.Option(
        False,
        "--native",
        help="Small-data protocol at the stimulus' own size, with the mean-image and pixel-ridge baselines.",
    ),
    preset: str = PresetOpt,
    config_files: list[Path] = ConfigOpt,
    overrides: list[str] = SetOpt,
) -> None:
    from rich.console import Console

    from ..errors import ConfigError
    from ..evaluation.files import cell, metric_columns
    from ..evaluation.runner import run_evaluation
    from ..utils.outputs import check_output

    if metrics:
        overrides = [
            *overrides,
            f"evaluate.metrics=[{', '.join(repr(m.strip()) for m in metrics.split(','))}]",
        ]
    config = resolve(preset, config_files, overrides)
    truth = truth or (Path(config.data.path) if config.data.path else None)
    if truth is None:
        raise ConfigError("no dataset to compare against", fix="give --truth DATASET (or set data.path)")
    out = check_output(out or recon_dirs[0], folder=True, what="evaluation")
    if native:
        from .native import evaluate_native

        return evaluate_native(recon_dirs, truth, subject, out, config)
    doc = run_evaluation(recon_dirs, truth, config, out, subject=subject, decoded=decoded, targets=targets)
    console = Console()
    from rich.table import Table

    rows = [r for r in doc["rows"] if r["policy"] != "mean"]
    cols = [c for c in metric_columns(rows) if not all(isinstance(r["values"].get(c), dict) for r in rows)]
    table = Table("method", "setting", *cols)
    for r in rows:
        table.add_row(r["method"], r["setting"], *[cell(r["values"].get(c)) for c in cols])
    console.print(table)
    for name, info in doc["metrics"].items():
        if info.get("unavailable"):
            console.print(f"[yellow]unavailable[/] {name}: {info['unavailable']}", soft_wrap=True)
    console.print(f"wrote {Path(doc['out_dir']) / 'metrics.json'} and metrics.csv")
