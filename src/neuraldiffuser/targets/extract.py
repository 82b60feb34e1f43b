"""Target extraction for every stimulus image (reference §2): z, c and g, written to ``targets.hdf5``.

- z: the image resized to the stack's resolution (PIL LANCZOS, as the reference does for SD at
  512 px; images already at that size are used as they are), scaled to [−1, 1], encoded by the
  VAE; the posterior's mode or a sample whose noise comes from (z_seed, image index), times the
  VAE scaling factor.
- c: the text encoder's last hidden state (after its final LayerNorm, padding tokens kept) of every
  caption of the image, averaged over the captions.
- g: the guidance encoder's hooked MLP outputs on the original image (it resizes to its own input
  size and normalises with ImageNet statistics, as the reference extracts g from the 425 px image).

Rows are written batch by batch with their ``done`` flag, so an interrupted run continues where it
stopped; a store made with different settings is refused rather than mixed.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.schema import Config
from ..data.dataset import Dataset
from ..errors import DataError
from ..utils.io import atomic_path
from ..utils.progress import track
from .store import TargetStore, create_store, write_rows

CHECKED_ATTRS = ("zoo_path", "z_mode", "z_seed", "resolution", "guidance_layers", "resize", "guidance_normalization")


def resize_images(images: np.ndarray, size: int, method: str = "lanczos") -> np.ndarray:
    """uint8 (n, H, W, 3) → uint8 (n, size, size, 3) with PIL; unchanged when already that size. A non-square
    image is first padded to a square with its edge pixels (``data.fit``'s policy, so it is not distorted)."""
    if images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    if images.shape[1] != images.shape[2]:
        from ..data.fit import to_stack

        images = to_stack(images, max(images.shape[1:3]))  # pad only

    resample = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[method]
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample=resample)) for im in images])


def to_tensor(images: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (n, H, W, 3) → float (n, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device=device, dtype=dtype) / 255.0


def z_noise(image_index: int, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The standard-normal draw of one image's z sample, fixed by (seed, image index)."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), int(image_index)]).generate_state(1, np.uint64)[0] >> 1))
    return torch.randn(shape, generator=g)


@torch.no_grad()
def encode_z(components: Any, pixels: torch.Tensor, images: np.ndarray, mode: str, seed: int) -> torch.Tensor:
    """VAE latent × scaling factor of [0, 1] pixels at the stack's resolution."""
    dist = components.vae.encode(pixels * 2 - 1).latent_dist
    if mode == "mode":
        latent = dist.mode()
    else:
        noise = torch.stack([z_noise(int(i), seed, tuple(dist.mean.shape[1:])) for i in images]).to(dist.mean)
        latent = dist.mean + dist.std * noise
    return latent * components.latent_scale


@torch.no_grad()
def encode_captions(components: Any, captions: list[list[str]]) -> torch.Tensor:
    """Mean over each image's captions of the text encoder's last hidden state → (n, T, D)."""
    flat = [c for caps in captions for c in caps]
    hidden = components.encode_text(flat).float()
    counts = torch.tensor([len(c) for c in captions], device=hidden.device)
    owner = torch.repeat_interleave(torch.arange(len(captions), device=hidden.device), counts)
    total = torch.zeros(len(captions), *hidden.shape[1:], device=hidden.device).index_add_(0, owner, hidden)
    return total / counts.view(-1, 1, 1)


def target_shapes(components: Any, keys: list[str]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if "z" in keys:
        shapes["z"] = tuple(components.latent_shape)
    if "c" in keys:
        shapes["c"] = (int(components.tokenizer.model_max_length), int(components.text_encoder.config.hidden_size))
    if "g" in keys:
        enc = components.guidance
        shapes["g"] = (len(enc.layers), int(enc.tokens), int(enc.width))
    return shapes


def _attrs(config: Config, components: Any, dataset: Dataset) -> dict[str, Any]:
    e = config.extract
    attrs = {"zoo_path": config.zoo.path, "z_mode": e.z_mode, "z_seed": e.z_seed, "resolution": int(components.resolution),
             "guidance_layers": list(config.zoo.guidance_layers), "resize": e.resize, "guidance_normalization": config.zoo.guidance_normalization,
             "g_dtype": e.g_dtype, "dataset": str(dataset.root), "created": _dt.datetime.now().isoformat(timespec="seconds")}
    if "z" in e.targets:
        attrs["latent_scale"] = float(components.latent_scale)
    return attrs


def _open_or_create(out: Path, images: np.ndarray, shapes: dict, attrs: dict, dtypes: dict, overwrite: bool) -> np.ndarray:
    """Rows still to do; creates the store (atomically) or checks that an existing one matches."""
    if out.exists() and not overwrite:
        with TargetStore(out) as st:
            if not np.array_equal(st.image, images) or set(st.keys) != set(shapes):
                raise DataError(f"existing store holds {len(st)} images with {st.keys}, not the {len(images)} images with {sorted(shapes)} asked for", where=str(out), fix="pass --overwrite or choose another output")
            diff = [k for k in CHECKED_ATTRS if k in attrs and st.attrs.get(k) != attrs[k]]
            if diff:
                raise DataError(f"existing store was made with other settings ({', '.join(f'{k}={st.attrs.get(k)!r}' for k in diff)})", where=str(out), fix="pass --overwrite or choose another output")
            return np.flatnonzero(~st.done)
    with atomic_path(out, suffix=".hdf5") as tmp:
        create_store(tmp, images, shapes, dtypes, attrs)
    return np.arange(len(images))


def extract_targets(config: Config, dataset: Dataset, out: str | Path, components: Any = None, overwrite: bool = False) -> Path:
    """Extract ``config.extract.targets`` for every image of ``dataset`` into ``out``; resumes unfinished stores."""
    from ..zoo.loader import Components

    e = config.extract
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if e.device == "auto" else e.device)
    comp = components or Components(config.zoo, device=device)
    out = Path(out)
    images = np.arange(len(dataset.images), dtype=np.int64)
    shapes = target_shapes(comp, e.targets)
    todo = _open_or_create(out, images, shapes, _attrs(config, comp, dataset), {"g": e.g_dtype}, overwrite)
    res = comp.resolution if "z" in shapes else None
    batches = [todo[i : i + e.batch_size] for i in range(0, len(todo), e.batch_size)]
    for rows in track(batches, "extract targets"):
        idx = images[rows]
        raw = dataset.images.get(idx)
        values: dict[str, np.ndarray] = {}
        if "z" in shapes:
            pixels = to_tensor(resize_images(raw, res, e.resize), comp.device, comp.dtype)
            values["z"] = encode_z(comp, pixels, idx, e.z_mode, e.z_seed).float().cpu().numpy()
        if "c" in shapes:
            values["c"] = encode_captions(comp, [dataset.captions_of(int(i)) for i in idx]).cpu().numpy()
        if "g" in shapes:
            with torch.no_grad():
                values["g"] = comp.guidance(to_tensor(raw, comp.device, comp.dtype)).float().cpu().numpy()
        write_rows(out, rows, values)
    return out
