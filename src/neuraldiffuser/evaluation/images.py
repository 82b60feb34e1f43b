"""Score anyone's reconstructions (``neuraldiffuser evaluate-images``): image folders or
strips, any resolution.

The same evaluator as ``evaluate`` (``runner.Evaluator``: MindEye2's protocol, every metric whose weights
are present, repeat consistency, per-image values, the result cache) on folders that carry no manifest
(``imagefolders``), against stimuli from strips, an image folder, an array or a dataset (``truths``).
The given folders are compared pairwise with the first (or ``baseline``): mean per-image difference and
its 95% interval (``compare.paired_difference``).

Protocol variants (docs/evaluation.md): ``blurry`` folders blend each reconstruction as
``blend × refined + (1 − blend) × blurry`` at 256² (MindEye2's final score uses 0.75); ``subset``
restricts the scored images (e.g. the 982 test images shared by subjects 1, 2, 5, 7); ``policy``
picks the headline row (``repeat`` = one reconstruction per image, ``mean`` = averaged over repeats).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config.schema import Config
from ..errors import ConfigError, DataError
from .compare import compare_rows
from .imagefolders import ImageFolder, read_index_file, scan_folder
from .preprocess import to_protocol
from .registry import METRICS
from .runner import BRAIN, Evaluator
from .truths import STRIPS, DatasetTruth, StripTruth, check_covers, open_truth

MINDEYE2_BLEND = 0.75


@dataclass
class ImageScoring:
    """What ``evaluate-images`` was asked (the CLI's options, one to one)."""

    strips: int | None = None
    truth_tile: int | None = 0
    truth_key: str | None = None
    labels: list[str] = field(default_factory=list)
    method: str = "reconstructions"
    subset: str | None = None
    blurry: list[str] = field(default_factory=list)
    blend: float = MINDEYE2_BLEND
    baseline: str | None = None
    policy: str = "repeat"
    subject: str | None = None


class _TruthView:
    """The two things ``Evaluator`` asks of a dataset (``images.get``, ``root``) over any truth source."""

    def __init__(self, source):
        self.images, self.root = source, Path(source.root)


@dataclass
class BlendedFolder:
    """``blend × refined + (1 − blend) × blurry`` at 256² (float tensors, no rounding), per repeat."""

    refined: ImageFolder
    blurry: ImageFolder
    blend: float
    antialias: bool = False

    def __getattr__(self, name):  # path, images, repeats, method, setting, strip, ...: the refined folder's
        return getattr(self.refined, name)

    @property
    def manifest(self) -> dict:
        return {**self.refined.manifest, "blurry": self.blurry.manifest, "blend": self.blend}

    def load(self, images, repeat: int) -> torch.Tensor:
        b = min(repeat, self.blurry.repeats - 1)  # one blurry image per test image serves every repeat
        ref = to_protocol(self.refined.load(images, repeat), self.antialias)
        blur = to_protocol(self.blurry.load(images, b), self.antialias)
        return self.blend * ref + (1.0 - self.blend) * blur


class ImagesEvaluator(Evaluator):
    """``Evaluator`` with a truth source per folder; brain correlation only against one of our datasets."""

    def __init__(self, config: Config, cache_dir: Path | None, brain_reason: str | None):
        super().__init__(config, _TruthView(_Empty()), cache_dir)
        self.brain_reason = brain_reason

    def use_truth(self, source) -> None:
        self.dataset = source.dataset if isinstance(source, DatasetTruth) else _TruthView(source)

    def brain_context(self, subject: str):
        if self.brain_reason and BRAIN in self.names:
            return self.brain_reason
        return super().brain_context(subject)


class _Empty:
    root = Path(".")

    def get(self, images):
        raise DataError("no truth source selected")


def _labels(folders: list[Path], labels: list[str]) -> list[str]:
    if labels:
        if len(labels) != len(folders):
            raise ConfigError(
                f"{len(labels)} --label for {len(folders)} folders",
                fix="give one --label per RECON_DIR, in order",
            )
        out = list(labels)
    else:
        out = [p.name for p in folders]
        if len(set(out)) < len(out):  # e.g. recon/0.0 and recon/500000.0/0.2 → use the path
            out = [
                os.path.relpath(p.resolve(), Path(os.path.commonpath([q.resolve() for q in folders])))
                or p.name
                for p in folders
            ]
    if len(set(out)) < len(out):
        raise ConfigError(
            f"two folders share the label '{next(x for x in out if out.count(x) > 1)}'",
            fix="give distinct --label values",
        )
    return out


def scan_all(recon_dirs, opts: ImageScoring, antialias: bool = False) -> list:
    """Scan, validate and (with blurry folders) wrap every reconstruction folder; counts must agree."""
    dirs = [Path(d) for d in recon_dirs]
    subset = read_index_file(opts.subset) if opts.subset else None
    labels = _labels(dirs, opts.labels)
    folders = [
        scan_folder(
            d, opts.strips, opts.truth_tile, subset, method=opts.method, setting=lab, subject=opts.subject
        )
        for d, lab in zip(dirs, labels, strict=True)
    ]
    first = folders[0]
    for f in folders[1:]:
        if len(f.images) != len(first.images) or not np.array_equal(f.images, first.images):
            only = sorted(set(first.images.tolist()) ^ set(f.images.tolist()))
            raise DataError(
                f"{len(f.images)} images here but {len(first.images)} in "
                f"{first.path} (e.g. image {only[0] if only else '?'} is in one only)",
                where=str(f.path),
                fix="compared folders must hold the same test images; restrict them with --subset",
            )
    if not opts.blurry:
        return folders
    if len(opts.blurry) != len(folders):
        raise ConfigError(
            f"{len(opts.blurry)} --blurry folders for {len(folders)} reconstruction folders",
            fix="give one --blurry per RECON_DIR, in order",
        )
    if not 0.0 <= opts.blend <= 1.0:
        raise ConfigError(f"--blend {opts.blend} is outside [0, 1]")
    out = []
    for f, b in zip(folders, opts.blurry, strict=True):
        blurry = scan_folder(b, opts.strips, opts.truth_tile, f.images, setting=f.setting)
        out.append(BlendedFolder(f, blurry, opts.blend, antialias))
    return out


def _comparisons(rows: list[dict], labels: list[str], baseline: str | None) -> list[dict]:
    base = baseline or labels[0]
    if base not in labels:
        raise ConfigError(f"--baseline '{base}' is not one of the labels {labels}")
    out = []
    for policy in dict.fromkeys(r["policy"] for r in rows):
        by = {r["setting"]: r for r in rows if r["policy"] == policy}
        for lab in labels:
            if lab != base:
                out.append(
                    {
                        "method": by[lab]["method"],
                        "setting": lab,
                        "baseline": base,
                        "policy": policy,
                        "differences": compare_rows(by[lab], by[base]),
                    }
                )
    return out


def evaluate_images(
    recon_dirs,
    truth,
    config: Config,
    out_dir: str | Path,
    opts: ImageScoring | None = None,
    report: bool = True,
) -> dict:
    """Score the folders; write metrics.json, metrics.csv and report.html into ``out_dir``;
    return the document."""
    from ..config import save_config
    from .files import write_metrics

    opts = opts or ImageScoring()
    if opts.policy not in ("repeat", "mean"):
        raise ConfigError(
            f"--policy {opts.policy!r}",
            fix="use 'repeat' (one reconstruction per image) or 'mean' (averaged over repeats)",
        )
    out = Path(out_dir)
    folders = scan_all(recon_dirs, opts, config.evaluate.antialias)
    source = open_truth(truth, opts.truth_key, config.data.layout)
    if source == STRIPS and not opts.strips:
        raise ConfigError(
            "no truth for image folders",
            fix="give --truth (image folder, .hdf5/.npy, dataset), "
            "or --strips K for strips with a stimulus tile",
        )
    brain_reason = (
        None
        if isinstance(source, DatasetTruth)
        else "brain correlation needs a dataset with test betas and an encoding model (--truth DATASET)"
    )
    if opts.blurry and brain_reason is None:
        brain_reason = "not computed on blended (refined + blurry) images"
    ev = ImagesEvaluator(
        config, Path(config.evaluate.cache_dir) if config.evaluate.cache_dir else out / ".cache", brain_reason
    )
    rows = []
    for rec in folders:
        src = (
            StripTruth(rec.refined if isinstance(rec, BlendedFolder) else rec) if source == STRIPS else source
        )
        check_covers(src, rec)
        ev.use_truth(src)
        subject = opts.subject or config.data.subject
        rows += [
            {**r, "recon_rel": os.path.relpath(r["recon_dir"], out.resolve()), "layout": rec.layout()}
            for r in ev.evaluate_folder(rec, subject)
        ]
    labels = [r.setting for r in folders]
    comparisons = _comparisons(rows, labels, opts.baseline) if len(folders) > 1 else []
    doc = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "truth": str(Path(truth).resolve()) if source != STRIPS else STRIPS,
        "subjects": [opts.subject] if opts.subject else [],
        "out_dir": str(out.resolve()),
        "source": "evaluate-images",
        "protocol": {
            "resize_first": 256,
            "pixel_size": 425,
            "antialias": config.evaluate.antialias,
            "table_repeat": config.evaluate.table_repeat,
            "device": str(ev.device),
            "headline_policy": opts.policy,
            "n_images": len(folders[0].images),
            "subset": str(opts.subset) if opts.subset else None,
            "blend": {"weight_refined": opts.blend, "blurry": [str(b) for b in opts.blurry]}
            if opts.blurry
            else None,
            "strips": opts.strips,
            "truth_tile": opts.truth_tile if opts.strips else None,
        },
        "metrics": {
            n: {
                **METRICS[n].info(),
                "unavailable": ev.unavailable.get(n) or (brain_reason if n == BRAIN else None),
                "weights": ev.sources.get(METRICS[n].backbone or ""),
            }
            for n in ev.names
        },
        "rows": rows,
        "references": [],
        "comparisons": comparisons,
    }
    write_metrics(out, doc)
    save_config(config, out, name="evaluate_config.yaml")
    if report:
        from ..report.html import write_report

        write_report([out], out / "report.html", title="Reconstruction scores")
        doc["report"] = str(out / "report.html")
    return doc
