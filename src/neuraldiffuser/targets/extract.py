"""Target extraction for every stimulus image (method notes §3): z, c and g, written to ``targets.hdf5``.

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
from ..data.fingerprint import dataset_fingerprint
from ..errors import ConfigError, DataError, RunError
from ..utils.io import atomic_path
from ..utils.progress import track
from ..utils.storage import allocated_bytes, require_free_space
from .store import TargetStore, create_store, store_bytes, write_rows

CHECKED_ATTRS = (
    "zoo_path",
    "z_mode",
    "z_seed",
    "resolution",
    "guidance_layers",
    "resize",
    "guidance_normalization",
)


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
    return np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), resample=resample)) for im in images]
    )


def to_tensor(images: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 (n, H, W, 3) → float (n, 3, H, W) in [0, 1]."""
    return (
        torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device=device, dtype=dtype)
        / 255.0
    )


def z_noise(image_index: int, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The standard-normal draw of one image's z sample, fixed by (seed, image index)."""
    g = torch.Generator().manual_seed(
        int(np.random.SeedSequence([int(seed), int(image_index)]).generate_state(1, np.uint64)[0] >> 1)
    )
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
        shapes["c"] = (
            int(components.tokenizer.model_max_length),
            int(components.text_encoder.config.hidden_size),
        )
    if "g" in keys:
        enc = components.guidance
        shapes["g"] = (len(enc.layers), int(enc.tokens), int(enc.width))
    return shapes


def _attrs(config: Config, components: Any, dataset: Dataset) -> dict[str, Any]:
    e = config.extract
    attrs = {
        "zoo_path": config.zoo.path,
        "z_mode": e.z_mode,
        "z_seed": e.z_seed,
        "resolution": int(components.resolution),
        "guidance_layers": list(config.zoo.guidance_layers),
        "resize": e.resize,
        "guidance_normalization": config.zoo.guidance_normalization,
        "g_dtype": e.g_dtype,
        "dataset": str(Path(dataset.root).absolute()),
        "dataset_fingerprint": dataset_fingerprint(dataset),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    if "z" in e.targets:
        attrs["latent_scale"] = float(components.latent_scale)
    return attrs


def _open_or_create(
    out: Path, images: np.ndarray, shapes: dict, attrs: dict, dtypes: dict, overwrite: bool
) -> np.ndarray:
    """Rows still to do; creates the store (atomically) or checks that an existing one matches."""
    if out.exists() and not overwrite:
        return _resume(out, images, shapes, attrs, dtypes)
    with atomic_path(out, suffix=".hdf5") as tmp:
        create_store(tmp, images, shapes, dtypes, attrs, name=out)
    return np.arange(len(images))


def _resume(out: Path, images: np.ndarray, shapes: dict, attrs: dict, dtypes: dict) -> np.ndarray:
    """Rows an existing store still lacks, after checking it was made from this dataset
    with these settings."""
    again = "pass --overwrite to start it again, or choose another --out"
    try:
        st = TargetStore(out, complete=False)
    except DataError as exc:
        raise DataError(f"existing store cannot be resumed ({exc.what})", where=str(out), fix=again) from None
    with st:
        made_from = st.attrs.get("dataset_fingerprint")
        if made_from is not None and made_from != attrs["dataset_fingerprint"]:
            raise DataError(
                f"existing store was extracted from another dataset ({st.attrs.get('dataset')}: "
                f"{made_from}); this one is {attrs['dataset']}: {attrs['dataset_fingerprint']}",
                where=str(out),
                fix="pass --overwrite to extract this dataset into it, or choose another --out",
            )
        if not np.array_equal(st.image, images) or set(st.keys) != set(shapes):
            raise DataError(
                f"existing store holds {len(st)} images with {st.keys}, not "
                f"the {len(images)} images with {sorted(shapes)} asked for",
                where=str(out),
                fix=again,
            )
        diff = [k for k in CHECKED_ATTRS if k in attrs and st.attrs.get(k) != attrs[k]]
        if diff:
            raise DataError(
                "existing store was made with other settings "
                f"({', '.join(f'{k}={st.attrs.get(k)!r}' for k in diff)})",
                where=str(out),
                fix=again,
            )
        todo = np.flatnonzero(~st.done)
    # a store from before the space was reserved at creation may still grow
    require_free_space(
        out,
        store_bytes(len(images), shapes, dtypes) - allocated_bytes(out) if len(todo) else 0,
        "the rest of the target store",
    )
    return todo


def _require_finite(
    values: dict[str, np.ndarray], images: np.ndarray, out: Path, dtypes: dict[str, str]
) -> None:
    """Refuse to store a batch whose targets are NaN/Inf (in their storage dtype: float16
    overflows past 65504)."""
    for key, val in values.items():
        bad = ~np.isfinite(val.astype(dtypes.get(key, "float32")).reshape(len(val), -1)).all(axis=1)
        if bad.any():
            raise RunError(
                f"the computed '{key}' is NaN/Inf for images "
                f"{images[bad].tolist()[:8]}; that batch was not stored",
                where=str(out),
                fix="check the model weights (zoo.path) and those images"
                + ("; or store g as float32 (extract.g_dtype)" if key == "g" else ""),
            )


def extract_targets(
    config: Config, dataset: Dataset, out: str | Path, components: Any = None, overwrite: bool = False
) -> Path:
    """Extract ``config.extract.targets`` for every image of ``dataset`` into ``out``; resumes
    unfinished stores."""
    from ..zoo.loader import Components

    e = config.extract
    if e.batch_size < 1:
        raise ConfigError(
            f"extract.batch_size must be at least 1, got {e.batch_size}",
            where="extract.batch_size",
            fix="e.g. --set extract.batch_size=16",
        )
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if e.device == "auto" else e.device
    )
    comp = components or Components(config.zoo, device=device)
    out = Path(out)
    images = np.arange(len(dataset.images), dtype=np.int64)
    shapes = target_shapes(comp, e.targets)
    extra_mode = "z" in shapes and e.z_mode == "sample" and config.train.z_target == "mode"
    if extra_mode:  # the z decoder's training target (train.z_target) beside the sampled z
        shapes["z_mode"] = shapes["z"]
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
            if extra_mode:
                values["z_mode"] = encode_z(comp, pixels, idx, "mode", e.z_seed).float().cpu().numpy()
        if "c" in shapes:
            values["c"] = encode_captions(comp, [dataset.captions_of(int(i)) for i in idx]).cpu().numpy()
        if "g" in shapes:
            with torch.no_grad():
                values["g"] = comp.guidance(to_tensor(raw, comp.device, comp.dtype)).float().cpu().numpy()
        _require_finite(values, idx, out, {"g": e.g_dtype})
        write_rows(out, rows, values)
    TargetStore(
        out
    ).close()  # every row written and flagged, or a clear error now rather than in a later stage
    return out


def extract_from_arrays(
    stimuli: np.ndarray,
    captions: list[list[str]] | list[str] | None = None,
    config: Config | None = None,
    components: Any = None,
    keys: tuple[str, ...] = ("z", "c", "g"),
) -> dict[str, np.ndarray]:
    """The targets of images held in memory, computed as ``extract`` computes them (same
    functions, same seeds).

    ``stimuli``: (N, H, W, 3) uint8; ``captions``: one caption or a list per image (needed for 'c');
    ``config``: zoo and extract settings (default ``Config()``: the shipped mini zoo). Returns {'z': (N, C, h,
    w) (× the VAE scaling factor), 'c': (N, tokens, width), 'g': (N, L, tokens, width)} float32, for
    the ``keys`` asked for.
    """
    from ..utils.validation import check_array
    from ..zoo.loader import Components

    config = config or Config()
    e = config.extract
    stimuli = check_array(stimuli, "stimuli", ndim=4, shape=(None, None, 3), dtype=None)
    if stimuli.dtype != np.uint8:
        raise DataError(f"'stimuli' must be uint8 images in 0…255, got dtype {stimuli.dtype}")
    if "c" in keys:
        if captions is None or len(captions) != len(stimuli):
            raise DataError(
                "'captions' must give one caption (or list of "
                f"captions) for each of the {len(stimuli)} images"
            )
        captions = [[c] if isinstance(c, str) else list(c) for c in captions]
    comp = components or Components(config.zoo, device="cpu")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for start in track(range(0, len(stimuli), e.batch_size), "extract targets"):
        raw = stimuli[start : start + e.batch_size]
        idx = np.arange(start, start + len(raw))
        if "z" in keys:
            pixels = to_tensor(resize_images(raw, comp.resolution, e.resize), comp.device, comp.dtype)
            out["z"].append(encode_z(comp, pixels, idx, e.z_mode, e.z_seed).float().cpu().numpy())
        if "c" in keys:
            out["c"].append(encode_captions(comp, captions[start : start + len(raw)]).cpu().numpy())
        if "g" in keys:
            with torch.no_grad():
                out["g"].append(comp.guidance(to_tensor(raw, comp.device, comp.dtype)).float().cpu().numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
