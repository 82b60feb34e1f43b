"""The demo: every stage of the pipeline on the in-silico NSD with the shipped mini zoo, in minutes on a CPU.

Each stage calls the same function its command does and leaves its output in the demo folder, so a
second run reuses finished stages (the simulated dataset, the targets, the decoders …) and an
interrupted run resumes. ``fresh=True`` starts from scratch.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, load_config, save_config
from .utils.io import atomic_write_json
from .utils.progress import console

#: Reconstruction processes (one thread each: faster than threads for the mini zoo's small UNet calls).
WORKERS = max(1, min(2, os.cpu_count() or 1))

#: The demo's sampler against the mini preset's (25 steps, 3 repeats): 20 steps and 2 repeats keep the whole
#: demo within 5 minutes on 2 cores (2 repeats still give the repeat-consistency metric;
#: benchmarks/insilico.py runs the preset's own settings).
DEMO_REPEATS = 2
DEMO_STEPS = 20

#: A demo small enough for a test or a first look (seconds, not minutes): 2 subjects of ~100 voxels, 46 images
#: each, tiny decoders, 4 sampler steps, 1 repeat. ``train_demo_decoders(out, SMALL_DEMO)``;
#: the examples use it.
SMALL_DEMO: dict[str, Any] = {
    "simulate": {"subjects": 2, "n_images": 40, "test_images": 6, "sessions": 1, "voxels": [80, 120]},
    "decoder": {"hidden": 32, "blocks": 1},
    "train": {
        "pretrain_epochs": 1,
        "finetune_epochs": 2,
        "epoch_samples": 64,
        "batch_size": 16,
        "tensorboard": False,
        "ridge": False,
    },
    "sampler": {"steps": 4, "repeats": 1},
}

#: What the demo prints at the end: (metric name in metrics.json, column title, format).
SUMMARY_METRICS = [
    ("PixCorr", "PixCorr ↑", "{:.3f}"),
    ("SSIM", "SSIM ↑", "{:.3f}"),
    ("mini-CLIP 2-way", "mini-CLIP 2-way ↑", "{:.1%}"),
    ("EffNet-Lite0 2-way", "EffNet-Lite0 2-way ↑", "{:.1%}"),
    ("Repeat SSIM", "repeat SSIM ↑", "{:.3f}"),
    ("Brain corr. all", "brain corr. ↑", "{:.3f}"),
]


@dataclass
class DemoPaths:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.data = self.root / "data"
        self.targets = self.root / "targets.hdf5"
        self.train = self.root / "decoders"
        self.decoded = self.root / "decoded.hdf5"
        self.recon = self.root / "recon"
        self.report = self.root / "report.html"
        self.figure = self.root / "demo_figure.png"


@dataclass
class DemoResult:
    paths: DemoPaths
    seconds: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    guidance: list[dict[str, Any]] = field(default_factory=list)  # guided − unguided, paired over the images


def demo_config(paths: DemoPaths, overrides: dict[str, Any] | None = None) -> Config:
    """The ``mini`` preset pointed at the demo's dataset, target subject subj01, with the demo's sampler
    steps and repeats."""
    base = {
        "data": {"path": str(paths.data.resolve()), "subject": "subj01"},
        "sampler": {"repeats": DEMO_REPEATS, "steps": DEMO_STEPS},
    }
    from .config.load import deep_merge

    return load_config("mini", overrides=deep_merge(base, overrides or {}))


def stage_simulate(config: Config, paths: DemoPaths) -> str:
    from .simulate.run import simulate_dataset

    return simulate_dataset(paths.data, config.simulate)


def stage_extract(config: Config, paths: DemoPaths) -> str:
    from .data import open_dataset
    from .targets.extract import extract_targets

    extract_targets(config, open_dataset(paths.data), paths.targets)
    return f"targets → {paths.targets}"


def stage_train(config: Config, paths: DemoPaths) -> str:
    from .training.runner import check_resume_config, train_decoders

    if (paths.train / "summary.json").is_file():
        return f"decoders already trained in {paths.train}"
    if paths.train.exists():
        check_resume_config(config, paths.train)  # an interrupted demo continues where it stopped
    save_config(config, paths.train)
    result = train_decoders(config, paths.train, paths.targets)
    return f"{len(result['models'])} decoder models → {paths.train / 'decoders'}"


def stage_decode(config: Config, paths: DemoPaths) -> str:
    from .training.decode import decode_test

    decode_test(config, paths.train, paths.decoded)
    return f"decoded test targets → {paths.decoded}"


def stage_reconstruct(config: Config, paths: DemoPaths) -> str:
    from .sampling.processes import reconstruct_in_processes

    sweep = {"kappa": [config.sampler.kappa, 0.0]}
    folders = reconstruct_in_processes(
        paths.decoded, paths.recon, config, WORKERS, dataset=paths.data, sweep=sweep
    )
    return "guided and unguided → " + ", ".join(str(f.relative_to(paths.root)) for f in folders)


def stage_evaluate(config: Config, paths: DemoPaths) -> str:
    from .evaluation.runner import run_evaluation

    run_evaluation(
        [paths.recon], paths.data, config, paths.recon, decoded=paths.decoded, targets=paths.targets
    )
    return f"metrics → {paths.recon / 'metrics.json'}"


def stage_report(config: Config, paths: DemoPaths) -> str:
    from .report.html import write_report

    write_report([paths.recon], paths.report, title="neuraldiffuser demo: in-silico NSD, subject 1", images=6)
    write_figure(paths, paths.figure)
    return f"report → {paths.report}, figure → {paths.figure}"


def write_figure(paths: DemoPaths, out: Path, n: int = 8) -> None:
    """The first ``n`` test images: stimulus, guided and unguided reconstruction (repeat
    0), one column each."""
    import json

    from PIL import Image

    from .data import open_dataset
    from .report.figures import image_grid
    from .utils.io import atomic_write_bytes

    rows, labels = [], ["stimulus"]
    folders = sorted(
        (paths.recon / "neuraldiffuser").glob("kappa=*/manifest.json"),
        key=lambda m: m.parent.name.startswith("kappa=0_"),
    )
    manifests = [json.loads(m.read_text()) for m in folders]  # guided first, then unguided
    images = manifests[0]["images"][:n]
    rows.append(list(open_dataset(paths.data).images.get(images)))
    for folder, m in zip(folders, manifests, strict=True):
        rows.append(
            [np.asarray(Image.open(folder.parent / m["files"][str(i)][0]).convert("RGB")) for i in images]
        )
        labels.append(setting_label({"method": m["method"], "setting": m["setting"]}).split(" (")[0])
    atomic_write_bytes(out, image_grid(rows, [f"#{i}" for i in images], labels, tile=96))


STAGES: list[tuple[str, Callable[[Config, DemoPaths], str]]] = [
    ("simulate", stage_simulate),
    ("extract", stage_extract),
    ("train", stage_train),
    ("decode", stage_decode),
    ("reconstruct", stage_reconstruct),
    ("evaluate", stage_evaluate),
    ("report", stage_report),
]


def train_demo_decoders(out: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """The demo's first stages (simulate, extract, train) into ``out``; returns the run folder
    ``out/decoders``, which ``NeuralDiffuserPipeline.from_pretrained`` loads. Finished stages are reused, as
    in :func:`run_demo`."""
    paths = DemoPaths(Path(out))
    paths.root.mkdir(parents=True, exist_ok=True)
    config = demo_config(paths, overrides)
    for name, stage in STAGES[:3]:
        console.print(f"[bold]{name}[/bold]: {stage(config, paths)}")
    return paths.train


def run_demo(out: str | Path, fresh: bool = False, overrides: dict[str, Any] | None = None) -> DemoResult:
    """Run every stage into ``out``; finished stages are reused unless ``fresh``."""
    paths = DemoPaths(Path(out))
    if fresh and paths.root.exists():
        shutil.rmtree(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    config = demo_config(paths, overrides)
    save_config(config, paths.root)
    result = DemoResult(paths)
    t_all = time.perf_counter()
    for i, (name, fn) in enumerate(STAGES, start=1):
        console.rule(f"[bold]{i}/{len(STAGES)} {name}")
        t0 = time.perf_counter()
        message = fn(config, paths)
        result.seconds[name] = round(time.perf_counter() - t0, 1)
        console.print(f"  {message}  [dim]({result.seconds[name]:.1f} s)[/]")
    result.seconds["total"] = round(time.perf_counter() - t_all, 1)
    result.rows, result.guidance = (
        summary_rows(paths.recon / "metrics.json"),
        guidance_rows(paths.recon / "metrics.json"),
    )
    atomic_write_json(
        paths.root / "demo_summary.json",
        {
            "seconds": result.seconds,
            "rows": result.rows,
            "guided_minus_unguided": result.guidance,
            "report": str(paths.report),
        },
    )
    return result


def summary_rows(metrics_json: Path) -> list[dict[str, Any]]:
    """The headline rows (repeat 0 of each setting) with the summary metrics."""
    import json

    doc = json.loads(Path(metrics_json).read_text())
    rows = []
    for row in doc["rows"]:
        if row.get("policy") != "repeat0":
            continue
        values = row.get("values", {})
        cells = {
            name: "unavailable" if isinstance(values.get(name), dict) else values.get(name)
            for name, _, _ in SUMMARY_METRICS
        }
        rows.append({"setting": setting_label(row), "folder": f"{row['method']}/{row['setting']}", **cells})
    return rows


def guidance_rows(metrics_json: Path) -> list[dict[str, Any]]:
    """Guided − unguided per summary metric, paired over the test images (one row per guided
    setting and policy)."""
    import json

    from .evaluation.compare import against_unguided

    rows = json.loads(Path(metrics_json).read_text())["rows"]
    names = [name for name, _, _ in SUMMARY_METRICS]
    return [
        {
            "setting": setting_label(c),
            "policy": c["policy"],
            **{k: c["differences"][k] for k in names if k in c["differences"]},
        }
        for c in against_unguided(rows)
    ]


def setting_label(row: dict[str, Any]) -> str:
    """'guided (κ=300, η=0.4)' / 'unguided' from a metrics row's setting name (``kappa=K_eta=E``)."""
    params = dict(part.split("=", 1) for part in row["setting"].split("_") if "=" in part)
    kappa = float(params.get("kappa", "nan"))
    if kappa != kappa:  # not a κ sweep folder (another method)
        return f"{row['method']} {row['setting']}"
    return "unguided (κ=0)" if kappa == 0 else f"guided (κ={kappa:g}, η={float(params.get('eta', 'nan')):g})"


def print_summary(result: DemoResult) -> None:
    from rich.table import Table

    table = Table(
        "setting", *[title for _, title, _ in SUMMARY_METRICS], title="subject 1, shared test images"
    )
    for row in result.rows:
        cells = [row["setting"]]
        for name, _, fmt in SUMMARY_METRICS:
            v = row.get(name)
            cells.append(fmt.format(v) if isinstance(v, (int, float)) else str(v or "—"))
        table.add_row(*cells)
    console.print(table)
    for g in result.guidance:
        parts = [
            f"{name} {'+' if g[name]['mean'] >= 0 else '−'}{fmt.format(abs(g[name]['mean']))} "
            f"±{fmt.format(g[name]['ci95'][1] - g[name]['mean'])}"
            for name, _, fmt in SUMMARY_METRICS
            if name in g
        ]
        what = "one reconstruction per image" if g["policy"].startswith("repeat") else "averaged over repeats"
        console.print(
            f"[bold]{g['setting']} − unguided[/] ({what}; mean ± "
            f"95% interval, paired over images): {', '.join(parts)}"
        )
    console.print(f"[bold]report:[/] {result.paths.report}")
    console.print(
        f"[bold]time:[/] {result.seconds['total']:.0f} s "
        f" ({', '.join(f'{k} {v:.0f}s' for k, v in result.seconds.items() if k != 'total')})"
    )
