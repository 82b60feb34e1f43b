"""Import your own data set: betas arrays and stimuli into the generic layout that every stage reads.

Reads: betas as .npy/.npz/.mat/HDF5 (trials × voxels; FILE:KEY picks an array), stimuli as an image folder or
an array of any size (greyscale or RGB), a split (--test-images, or a column of --trials-csv), optional
--captions or --labels. Writes: OUT (dataset.json, images.hdf5, captions.json, subjects/<name>/). Without
--betas it writes a stimuli-only set ("kind": "stimuli") for `zoo train`. See docs/own-data.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

NAME = "import"


def _named(items: list[str]) -> dict[str, str] | str | None:
    """["a.npy"] → "a.npy"; ["subj01=a.npy", "subj02=b.npy"] → {name: path}."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return items[0]
    out = {}
    for i, item in enumerate(items):
        name, _, path = item.partition("=") if "=" in item else (f"subj{i + 1:02d}", "", item)
        out[name] = path
    return out


def command(
    out: Path = typer.Argument(..., help="Dataset folder to write."),
    stimuli: str = typer.Option(
        ..., "--stimuli", help="Image folder, or an array file (N,H,W[,C]) as FILE[:KEY]."
    ),
    betas: list[str] = typer.Option(
        [], "--betas", help="[SUBJECT=]FILE[:KEY], trials × voxels; repeat for several subjects."
    ),
    image_index: list[str] = typer.Option(
        [],
        "--image-index",
        help="[SUBJECT=]FILE[:KEY]: stimulus index of each trial (default: trial i shows stimulus i).",
    ),
    test_images: str = typer.Option(
        None, "--test-images", help="Test stimulus indices: comma list (0,5,9), .txt or an array file."
    ),
    trials_csv: list[str] = typer.Option(
        [], "--trials-csv", help="[SUBJECT=]CSV with one row per trial (split/image/session columns)."
    ),
    split_column: str = typer.Option(
        "split", "--split-column", help="CSV column with train/test (or 0/1 = test)."
    ),
    image_column: str = typer.Option(
        "image", "--image-column", help="CSV column with the stimulus index of each trial."
    ),
    session_column: str = typer.Option(
        "session", "--session-column", help="CSV column with the 1-based session."
    ),
    captions: Path = typer.Option(
        None, "--captions", help="Captions: JSON list/object or a text file, one per image."
    ),
    labels: str = typer.Option(
        None, "--labels", help="Labels, one per image (FILE[:KEY]), captioned by --caption-template."
    ),
    caption_template: str = typer.Option(
        "an image of {label}", "--caption-template", help="Caption made from a label."
    ),
    default_caption: str = typer.Option(
        "an image",
        "--default-caption",
        help="Caption of every image when neither --captions nor --labels is given.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it is not empty."),
) -> None:
    from ..data import open_dataset
    from ..data.importer import import_dataset

    test = None
    if test_images is not None:
        test = (
            [int(t) for t in test_images.split(",") if t.strip()]
            if "," in test_images or test_images.strip().isdigit()
            else test_images
        )
    root = import_dataset(
        out,
        stimuli,
        _named(betas),
        image_index=_named(image_index),
        test=test,
        trials_csv=_named(trials_csv),
        split_column=split_column,
        image_column=image_column,
        session_column=session_column,
        captions=captions,
        labels=labels,
        caption_template=caption_template,
        default_caption=default_caption,
        overwrite=overwrite,
    )
    ds = open_dataset(root)
    h, w = ds.meta["stimulus_size"]
    parts = [f"{len(ds.images)} stimuli {w}×{h} {ds.meta['stimulus_mode']}"]
    for name, s in ds.subjects.items():
        n_test = int((s.trials.split == "test").sum())
        parts.append(
            f"{name}: {s.n_trials} trials ({s.n_trials - n_test} train, {n_test} test) × {s.n_voxels} voxels"
        )
    typer.echo(f"wrote {root}: " + "; ".join(parts))
