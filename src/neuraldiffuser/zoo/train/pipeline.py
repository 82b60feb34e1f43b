"""``train_zoo``: the three parts in order, into one folder in diffusers' Stable Diffusion layout.

Parts, in order: autoencoder (→ vae/), decoder (the VAE decoder fine-tuned on whole images, encoder
frozen; rewrites vae/), clip (→ clip/, text_encoder/), unet (→ unet/). The UNet depends only on the
encoder and the text encoder, so it may run in a second process while "decoder" runs.

OUT/
  vae/ unet/ scheduler/ tokenizer/ text_encoder/ clip/   the stack (what ``Components`` loads)
  train_settings.yaml   the settings of the run (a rerun must use the same ones)
  train_log.json        per part: steps, wall seconds, loss history, measured facts (scaling factor)
  checkpoints/          resumable state of the part in progress, and the cached latents

A part whose folder exists is done and skipped, so rerunning the command after an interruption
resumes where it stopped: inside a part from its last checkpoint, exactly.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ...errors import ConfigError
from ...utils.io import atomic_dir, atomic_write_json, atomic_write_text
from ..build import SD_SCHEDULER
from .data import ImageCaptionData
from .settings import ZooTrainSettings, settings_yaml

PARTS = ("autoencoder", "decoder", "clip", "unet")
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def _started(out: Path, part: str) -> bool:
    if part == "decoder":  # it rewrites vae/ in place: its record in the log marks it
        return (out / "checkpoints" / "decoder.pt").is_file() or part in _log(out)["parts"]
    folders = {"autoencoder": ("vae",), "clip": ("clip", "text_encoder"), "unet": ("unet",)}[part]
    return (out / "checkpoints" / f"{part}.pt").is_file() or any((out / f).is_dir() for f in folders)


def _done(out: Path, part: str, settings: ZooTrainSettings) -> bool:
    if part == "decoder":
        return settings.decoder.steps == 0 or part in _log(out)["parts"]
    folders = {"autoencoder": ("vae",), "clip": ("clip", "text_encoder"), "unet": ("unet",)}[part]
    return all((out / f).is_dir() for f in folders)


def _check_settings(out: Path, settings: ZooTrainSettings) -> None:
    """Refuse to change the settings of a part that has started (its checkpoint or weights would not fit).

    Parts not yet started may change, so the UNet can be tuned after the autoencoder and CLIP are done.
    """
    import yaml

    path = out / "train_settings.yaml"
    if path.is_file():
        old = yaml.safe_load(path.read_text()) or {}
        new = settings.model_dump(mode="json")
        shared = [k for k in ("seed", "save_dtype") if old.get(k) != new[k]]
        changed = [p for p in PARTS if old.get(p) != new[p] and _started(out, p)]
        if changed or (shared and any(_started(out, p) for p in PARTS)):
            raise ConfigError(
                f"this folder holds a run whose {', '.join(shared + changed)} settings differ from these",
                where=str(path),
                fix="use the same settings to resume, or a new --out folder",
            )
    atomic_write_text(path, settings_yaml(settings))


def write_static_parts(out: Path, max_length: int) -> None:
    """scheduler/ (SD v1.4's DDIM config) and tokenizer/ (the real CLIP BPE, ``max_length`` tokens)."""
    from diffusers import DDIMScheduler

    from ..tokenizer import write_clip_tokenizer

    if not (out / "scheduler").is_dir():
        with atomic_dir(out / "scheduler") as tmp:
            DDIMScheduler(**SD_SCHEDULER).save_pretrained(tmp)
    if not (out / "tokenizer").is_dir():
        with atomic_dir(out / "tokenizer") as tmp:
            write_clip_tokenizer(tmp, model_max_length=max_length)


def _log(out: Path) -> dict:
    path = out / "train_log.json"
    return json.loads(path.read_text()) if path.is_file() else {"parts": {}}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def train_zoo(
    images: str | Path | ImageCaptionData,
    out: str | Path,
    settings: ZooTrainSettings | None = None,
    parts: Sequence[str] = PARTS,
    limit: int | None = None,
    command: str | None = None,
    threads: int | None = None,
    processes: int = 1,
) -> dict:
    """Train the parts named in ``parts`` (each skipped if its folder exists) and return the run log."""
    from transformers import CLIPTokenizer

    from .autoencoder import finetune_decoder, train_autoencoder
    from .clip import train_clip
    from .unet import require_unet_folder, train_unet

    settings = settings or ZooTrainSettings()
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ConfigError(f"unknown parts {unknown}", fix=f"choose from {', '.join(PARTS)}")
    if threads:
        torch.set_num_threads(threads)  # not a setting: it changes speed, not what is learned
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    data = (
        images if isinstance(images, ImageCaptionData) else ImageCaptionData.from_dataset(images, limit=limit)
    )
    write_static_parts(out, settings.clip.max_length)
    data.tokenize(CLIPTokenizer.from_pretrained(out / "tokenizer"), settings.clip.max_length)
    log = _log(out)
    log.update(
        dataset=data.source,
        n_images=len(data),
        resolution=data.resolution,
        command=command or log.get("command"),
        torch_threads=torch.get_num_threads(),
        cpu=platform.processor() or platform.machine(),
        torch=torch.__version__,
    )
    ckpt = out / "checkpoints"
    dtype = DTYPES[settings.save_dtype]
    every = settings.checkpoint_every
    jobs = {
        "autoencoder": lambda: train_autoencoder(
            data, settings.autoencoder, settings.seed, out / "vae", ckpt / "autoencoder.pt", every, dtype
        ),
        "decoder": lambda: finetune_decoder(
            data, settings.decoder, settings.seed, out / "vae", ckpt / "decoder.pt", every, dtype
        ),
        "clip": lambda: train_clip(
            data,
            settings.clip,
            settings.seed,
            out / "clip",
            out / "text_encoder",
            ckpt / "clip.pt",
            every,
            dtype,
        ),
        "unet": lambda: train_unet(
            data, settings.unet, settings.seed, out, out / "unet", ckpt, every, dtype, processes
        ),
    }
    needs = {
        "decoder": ("vae",),
        "unet": ("vae", "text_encoder"),
    }  # the UNet needs only the encoder: it may run beside "decoder"
    for part in PARTS:
        if part not in parts or _done(out, part, settings):
            continue
        missing = [f for f in needs.get(part, ()) if not (out / f).is_dir()]
        if missing:
            raise ConfigError(
                f"the {part} part needs the trained {', '.join(missing)} first",
                where=str(out),
                fix="train the parts in order: " + ", ".join(PARTS),
            )
        init_from = settings.unet.init_from if part == "unet" else None
        if init_from:
            require_unet_folder(init_from)
        t0 = time.perf_counter()
        result = jobs[part]()
        result["wall_seconds_last_session"] = round(time.perf_counter() - t0, 1)
        if init_from:  # keep the record of the stage it extends
            result = {**result, "init_from": init_from, "previous": _log(out)["parts"].get(part)}
        log["parts"] = {
            **_log(out)["parts"],
            **log["parts"],
            part: result,
        }  # parts may run in parallel processes
        atomic_write_json(out / "train_log.json", log)
    if all(_done(out, p, settings) for p in PARTS):
        log["sizes_mb"] = {
            f: round(folder_mb(out / f), 2)
            for f in ("vae", "unet", "clip", "text_encoder", "tokenizer", "scheduler")
        }
        log["total_mb"] = round(sum(log["sizes_mb"].values()), 2)
        shutil.rmtree(ckpt, ignore_errors=True)
    atomic_write_json(out / "train_log.json", log)
    return log
