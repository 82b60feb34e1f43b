"""The reconstruct stage: targets in, one folder of PNGs + manifest per setting out (docs/architecture.md).

Each image is independent (its own seeded generator), so the work can be split in any way and
resumed at any point with identical files: an image is finished when its record
``records/<idx>.json`` exists, which is written atomically after its PNGs. Test images are
sharded across processes with accelerate (``accelerate launch -m neuraldiffuser reconstruct ...``);
the main process writes ``manifest.json`` from the records once every process is done.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import save_config
from ..config.load import load_run_config
from ..config.schema import Config
from ..errors import ConfigError, DataError
from ..targets.store import TargetStore
from ..utils.io import atomic_path, atomic_write_json
from ..utils.progress import progress_bar
from .methods import Method, Setting, get_method, sample_rows


@dataclass
class Job:
    """What to reconstruct: from which targets, for which images, with which stimuli beside them."""

    store: TargetStore
    images: list[int]
    kind: str  # 'decoded' or 'oracle'
    dataset: Any  # neuraldiffuser.data.Dataset (stimulus images for the strips)
    dataset_path: str
    subject: str


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    wait: Any = None  # callable: barrier between processes
    warning: str | None = (
        None  # the launch asked for more processes than run (utils.launch), kept in the manifest
    )

    def take(self, images: Sequence[int]) -> list[int]:
        return list(images)[self.index :: self.count]


def accelerate_shard() -> tuple[Shard, torch.device]:
    """This process's share of the images and its device, from accelerate's launch environment."""
    from accelerate import PartialState

    from ..utils.launch import warn_launch

    state = PartialState()
    warning = warn_launch(state.num_processes, state.is_main_process)
    return Shard(state.process_index, state.num_processes, state.wait_for_everyone, warning), state.device


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(R, 3, H, W) in [0, 1] → (R, H, W, 3) uint8, rounded."""
    return (
        (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    )


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def strip(stimulus: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """stimulus | repeat 0 | … | repeat R−1, the stimulus resized (Lanczos) to the reconstructions' size."""
    from PIL import Image

    h, w = repeats.shape[1:3]
    stim = np.asarray(Image.fromarray(stimulus).convert("RGB").resize((w, h), Image.LANCZOS))
    return np.concatenate([stim, *repeats], axis=1)


def read_targets(
    store: TargetStore, keys: Sequence[str], image: int, device: torch.device
) -> dict[str, torch.Tensor]:
    row = store.rows_of([image])
    return {k: torch.from_numpy(store.get(k, row)[0]).to(device) for k in keys}


def reconstruct_images(
    reconstructor, job: Job, keys: Sequence[str], images: Sequence[int], folder: Path, device
) -> None:
    """Reconstruct these images (together if the reconstructor has ``batch``), then write each one's PNGs,
    strip and record (the 'done' marker); the seconds of a shared call are split evenly between its images."""
    start = time.perf_counter()
    targets = [read_targets(job.store, keys, im, device) for im in images]
    outs = sample_rows(reconstructor, targets, images)
    seconds = (time.perf_counter() - start) / len(images)
    for image, out in zip(images, outs, strict=True):
        out = to_uint8(out)
        files = [f"images/{image:05d}_r{r}.png" for r in range(len(out))]
        for name, arr in zip(files, out, strict=True):
            write_png(folder / name, arr)
        write_png(folder / f"strips/{image:05d}.png", strip(job.dataset.images.get(image), out))
        record = {"image": image, "files": files, "strip": f"strips/{image:05d}.png", "seconds": seconds}
        record.update(write_native(job.dataset.meta, out, folder, image))
        atomic_write_json(folder / "records" / f"{image:05d}.json", record)


def write_native(meta: dict, out: np.ndarray, folder: Path, image: int) -> dict:
    """For an imported data set whose stimuli differ from the stack's canvas in size or mode:
    native/<idx>_r<k>.png at the stimulus' own size and mode (``data.fit.to_stimulus``, the inverse of the
    stack's pad/resize policy)."""
    size, mode = meta.get("stimulus_size"), meta.get("stimulus_mode", "RGB")
    if not size or (tuple(size) == out.shape[1:3] and mode == "RGB"):
        return {}
    from ..data.fit import to_stimulus

    files = [f"native/{image:05d}_r{r}.png" for r in range(len(out))]
    for name, arr in zip(files, to_stimulus(out, tuple(size), mode), strict=True):
        write_png(folder / name, arr)
    return {"native": files}


def prepare_folder(
    folder: Path, method: Method, setting: Setting, job: Job, overwrite: bool, main: bool
) -> None:
    """Refuse to mix results of different configs or targets in one folder; save the resolved config."""
    if overwrite and main and folder.exists():
        shutil.rmtree(folder)
    if (folder / "config.yaml").exists():
        same = method.fingerprint(load_run_config(folder)) == method.fingerprint(setting.config)
        old = (
            json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
        )
        if not same or old.get("targets", str(job.store.path)) != str(job.store.path):
            raise ConfigError(
                "this folder holds reconstructions made from other "
                "targets or with a different sampler, zoo or seed",
                where=str(folder),
                fix="use another --out, or --overwrite to start this setting again",
            )
    if main:
        save_config(setting.config, folder)
        write_manifest(folder, method, setting, job)


def write_manifest(
    folder: Path, method: Method, setting: Setting, job: Job, launch_warning: str | None = None
) -> dict[str, Any]:
    """manifest.json from the records of every finished image, in the targets' image order."""
    records = {}
    for im in job.images:
        path = folder / "records" / f"{im:05d}.json"
        if path.exists():
            records[im] = json.loads(path.read_text())
    seconds = [r["seconds"] for r in records.values()]
    manifest = {
        "method": method.name,
        "setting": setting.name,
        "params": {**setting.params, "targets": job.kind},
        "dataset": job.dataset_path,
        "subject": job.subject,
        "repeats": setting.config.sampler.repeats,
        "images": list(records),
        "files": {str(im): r["files"] for im, r in records.items()},
        "strips": {str(im): r["strip"] for im, r in records.items()},
        "seconds_per_image": float(np.mean(seconds)) if seconds else None,
        "config": "config.yaml",
        "targets": str(job.store.path),
        "complete": len(records) == len(job.images),
    }
    if launch_warning:
        manifest["launch_warning"] = launch_warning
    atomic_write_json(folder / "manifest.json", manifest)
    return manifest


def run_setting(
    components, method: Method, setting: Setting, job: Job, out: Path, shard: Shard, overwrite: bool
) -> Path:
    """One setting folder: validate, prepare (main process first), reconstruct this shard's
    unfinished images."""
    folder = setting_folder(out, method, setting)
    keys = method.needs(setting)
    reconstructor = method.build(components, setting, {k: job.store.shape(k) for k in job.store.keys})
    if shard.index == 0:
        prepare_folder(folder, method, setting, job, overwrite, main=True)
    if shard.wait:
        shard.wait()
    if shard.index != 0:
        prepare_folder(folder, method, setting, job, overwrite=False, main=False)
    todo = [im for im in shard.take(job.images) if not (folder / "records" / f"{im:05d}.json").exists()]
    per_call = getattr(reconstructor, "images_per_call", 1)
    with progress_bar(f"{method.name} {setting.name}", total=len(todo)) as bar:
        for i in range(0, len(todo), per_call):
            chunk = todo[i : i + per_call]
            start = time.perf_counter()
            reconstruct_images(reconstructor, job, keys, chunk, folder, components.device)
            bar.advance(len(chunk), info=f"{(time.perf_counter() - start) / len(chunk):.1f} s/image")
    if shard.wait:
        shard.wait()
    if shard.index == 0:
        write_manifest(folder, method, setting, job, shard.warning)
    return folder


def plan_settings(
    method: Method, config: Config, sweep: Mapping[str, Sequence[float]] | None, oracle: bool
) -> list[Setting]:
    """The method's settings for a sweep; on true targets (the upper bound) their folders get an
    ``_oracle`` suffix."""
    settings = method.settings(config, sweep or {})
    return [replace(s, name=f"{s.name}_oracle") for s in settings] if oracle else settings


def setting_folder(out: str | Path, method: Method, setting: Setting) -> Path:
    return Path(out) / method.name / setting.name


def reconstruct(
    job: Job,
    out: str | Path,
    config: Config,
    method: str = "neuraldiffuser",
    sweep: Mapping[str, Sequence[float]] | None = None,
    overwrite: bool = False,
    shard: Shard | None = None,
    device: str | torch.device | None = None,
) -> list[Path]:
    """Run every setting of ``method`` on the job's images; returns the setting folders."""
    from ..zoo.loader import Components

    chosen = get_method(method)
    settings = plan_settings(chosen, config, sweep, oracle=job.kind == "oracle")
    if shard is None:
        shard, auto_device = accelerate_shard()
        device = device or auto_device
    components = Components(config.zoo, device=device or "cpu")
    return [run_setting(components, chosen, s, job, Path(out), shard, overwrite) for s in settings]


def make_job(
    source: str | Path | None,
    config: Config,
    oracle: str | Path | None = None,
    dataset: str | Path | None = None,
    images: Sequence[int] | None = None,
    limit: int | None = None,
) -> Job:
    """Resolve the targets, the image list (decoded order, or the subject's test set) and the dataset."""
    from ..data import open_dataset

    decoded = TargetStore(resolve_source(source).resolve()) if source is not None else None
    if decoded is None and oracle is None:
        raise ConfigError(
            "nothing to reconstruct from",
            fix="give decoded.hdf5 (or its run folder), or --oracle targets.hdf5",
        )
    store = TargetStore(Path(oracle).resolve()) if oracle is not None else decoded
    ds_path = dataset or config.data.path
    if ds_path is None:
        raise ConfigError(
            "no dataset for the stimulus images of the strips", fix="give --dataset DATASET or set data.path"
        )
    ds = open_dataset(ds_path, layout=config.data.layout, captions=config.data.captions)
    subject = str((decoded.attrs.get("subject") if decoded is not None else None) or config.data.subject)
    if decoded is not None:
        order = [int(i) for i in decoded.image]
    else:
        order = [
            int(i)
            for i in ds.subject(subject).test_set(config.data.test_repeats, config.data.test_order).images
        ]
    if images is not None:
        missing = sorted(set(images) - set(order))
        if missing:
            raise DataError(
                f"images {missing[:5]} are not among the {len(order)} test images", where=str(store.path)
            )
        order = [i for i in order if i in set(images)]
    kind = "oracle" if oracle is not None else "decoded"
    return Job(store, order[:limit] if limit else order, kind, ds, str(Path(ds_path).resolve()), subject)


def resolve_source(source: str | Path) -> Path:
    """decoded.hdf5 itself, or a run folder that holds one."""
    path = Path(source)
    if path.is_dir():
        if not (path / "decoded.hdf5").is_file():
            raise DataError(
                "the folder holds no decoded.hdf5",
                where=str(path),
                fix="give the decode run folder or the file itself",
            )
        return path / "decoded.hdf5"
    if not path.is_file():
        raise DataError("no such file or folder", where=str(path))
    return path


def run_config_for(source: str | Path | None) -> Path | None:
    """The config.yaml of the run that made ``source`` (a decode folder, or decoded.hdf5 beside its run's
    config or naming its run in ``source_run``), or None."""
    if source is None:
        return None
    path = Path(source)
    if path.is_dir():
        return path / "config.yaml" if (path / "config.yaml").is_file() else None
    if not path.is_file():
        return None
    # what `decode` saved beside its file (decoded.config.yaml also serves decoded_ridge.hdf5)
    stem = path.stem
    for beside in (
        path.with_name(f"{stem}.config.yaml"),
        path.with_name(f"{stem.removesuffix('_ridge')}.config.yaml"),
        path.parent / "config.yaml",
    ):
        if beside.is_file():
            return beside
    try:
        with TargetStore(path) as store:
            run = store.attrs.get("source_run")
    except DataError:
        return None
    return Path(run) / "config.yaml" if run and (Path(run) / "config.yaml").is_file() else None
