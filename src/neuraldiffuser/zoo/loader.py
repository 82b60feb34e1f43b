"""One loader for every stage: SD v1.4 + CLIP for users who have them, the mini zoo for everyone.

No code branches on which stack it is: both are folders of the same classes (diffusers
``AutoencoderKL``/``UNet2DConditionModel``/``DDIMScheduler``, transformers ``CLIPTokenizer``/
``CLIPTextModel``/``CLIPVisionModel``). Components load on first use, so a stage that needs only
the VAE never reads the UNet.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..config.sections.zoo import ZooConfig
from ..errors import ModelLoadError
from .guidance import GuidanceEncoder

BUILTIN_DIR = Path(__file__).parent / "weights"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_path(spec: str) -> str:
    """'builtin:<name>' → the folder shipped in the package; anything else is returned as given."""
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        path = BUILTIN_DIR / name
        if not path.is_dir():
            available = (
                sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir()) if BUILTIN_DIR.is_dir() else []
            )
            raise ModelLoadError(
                f"no built-in zoo '{name}'",
                where=str(BUILTIN_DIR),
                fix=f"available: {', '.join(available) or 'none'}; "
                "or train one with `neuraldiffuser zoo train`",
            )
        return str(path)
    return spec


def is_local(spec: str) -> bool:
    return Path(spec).exists()


def looks_like_hub_id(spec: str) -> bool:
    """'owner/name' with the hub's characters; './x', '/abs/path', 'a/b/c' and '~/x' are
    folders, never hub ids."""
    return (
        re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*", spec) is not None
        and ".." not in spec
    )


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def in_hf_cache(repo_id: str) -> bool:
    return (hf_cache_dir() / f"models--{repo_id.replace('/', '--')}").is_dir()


def check_findable(spec: str, subfolder: str | None = None, download: bool = False) -> None:
    """Fail at once, without touching the network, when ``spec`` is neither a folder nor a cached hub model.

    A mistyped folder such as 'myorg/mystack' would otherwise wait on the network and end with a hub hint.
    A hub id that is not cached is fetched only when ``download`` (zoo.download) allows it.
    """
    if is_local(spec) or (looks_like_hub_id(spec) and (download or in_hf_cache(spec))):
        return
    folder = Path(spec).expanduser().absolute()
    sub = f" ({subfolder})" if subfolder else ""
    if not looks_like_hub_id(spec):
        raise ModelLoadError(
            f"the folder '{spec}'{sub} does not exist",
            where=str(folder),
            fix="point zoo.path at a stack folder in diffusers' Stable Diffusion "
            "layout (--set zoo.path=/path/to/stack) or use builtin:insilico-64",
        )
    raise ModelLoadError(
        f"could not load '{spec}'{sub}: there is no folder {folder} and "
        f"it is not in the local Hugging Face cache ({hf_cache_dir()})",
        fix=f"point at a local copy (--set zoo.path=/path/to/{spec.split('/')[-1]}), "
        f"or download it once (`huggingface-cli download {spec}`) or let the run "
        "download it (--set zoo.download=true)",
    )


@contextmanager
def quiet_loading():
    """Silence the libraries' load reports (e.g. a vision tower read from a full CLIPModel
    lists every text key)."""
    import diffusers
    import transformers

    t_level, d_level = transformers.logging.get_verbosity(), diffusers.logging.get_verbosity()
    t_bars, d_bars = (
        transformers.utils.logging.is_progress_bar_enabled(),
        diffusers.utils.logging.is_progress_bar_enabled(),
    )
    transformers.logging.set_verbosity_error()
    diffusers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(t_level)
        diffusers.logging.set_verbosity(d_level)
        if t_bars:
            transformers.utils.logging.enable_progress_bar()
        if d_bars:
            diffusers.utils.logging.enable_progress_bar()


def load_pretrained(
    cls: Any,
    spec: str,
    subfolder: str | None = None,
    what: str = "",
    download: bool = False,
    method: str = "from_pretrained",
    **kwargs: Any,
) -> Any:
    """``cls.from_pretrained`` (or ``method``, e.g. ``load_config``) with a message that names the model and
    how to give a local folder.

    Only a folder or a cached hub model is read unless ``download``; nothing reaches the network otherwise."""
    local = is_local(spec)
    if local and subfolder and not (Path(spec) / subfolder).is_dir():
        raise ModelLoadError(
            f"no '{subfolder}/' folder for the {what or cls.__name__}",
            where=spec,
            fix="the folder must follow diffusers' Stable Diffusion layout",
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    check_findable(spec, subfolder, download=download and not offline)
    try:
        if subfolder:
            kwargs["subfolder"] = subfolder
        with quiet_loading():
            return getattr(cls, method)(spec, local_files_only=local or offline or not download, **kwargs)
    except (OSError, ValueError) as exc:
        if local:
            raise ModelLoadError(
                f"could not load the {what or cls.__name__} "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
                where=f"{spec}/{subfolder or ''}",
            ) from None
        raise ModelLoadError(
            f"could not load '{spec}'{f' ({subfolder})' if subfolder else ''}: "
            "it is not in the local Hugging Face cache"
            + (" and HF_HUB_OFFLINE is set" if offline else " and could not be downloaded"),
            fix=f"download it once (`huggingface-cli download {spec}`) or give a "
            f"local folder, e.g. --set zoo.path=/path/to/{spec.split('/')[-1]}",
        ) from None


class Components:
    """Lazily loaded model components of one diffusion stack."""

    def __init__(self, config: ZooConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or ZooConfig()
        self.path = resolve_path(self.config.path)
        self.device = torch.device(device)
        self.dtype = DTYPES[self.config.dtype]

    def __repr__(self) -> str:
        return f"Components({self.path})"

    def _load(self, cls: Any, subfolder: str, what: str, is_model: bool = True) -> Any:
        kwargs = {"torch_dtype": self.dtype} if is_model else {}
        model = load_pretrained(
            cls,
            self.path,
            subfolder,
            what,
            download=self.config.download,
            revision=self.config.revision,
            **kwargs,
        )
        if is_model:
            model = model.to(self.device).eval().requires_grad_(False)
        return model

    @cached_property
    def vae(self):
        from diffusers import AutoencoderKL

        return self._load(AutoencoderKL, "vae", "VAE")

    @cached_property
    def unet(self):
        from diffusers import UNet2DConditionModel

        return self._load(UNet2DConditionModel, "unet", "UNet")

    @cached_property
    def scheduler(self):
        from diffusers import DDIMScheduler

        return self._load(DDIMScheduler, "scheduler", "scheduler", is_model=False)

    @cached_property
    def tokenizer(self):
        from transformers import CLIPTokenizer

        return self._load(CLIPTokenizer, "tokenizer", "tokenizer", is_model=False)

    @cached_property
    def text_encoder(self):
        from transformers import CLIPTextModel

        return self._load(CLIPTextModel, "text_encoder", "text encoder")

    def guidance_spec(self) -> tuple[str, str | None]:
        """(path or hub id, subfolder) of the guidance vision tower."""
        if self.config.guidance_encoder:
            return resolve_path(self.config.guidance_encoder), None
        check_findable(self.path, download=self.config.download)  # a missing folder is named as such
        for sub in ("guidance_encoder", "clip"):
            if is_local(self.path) and (Path(self.path) / sub).is_dir():
                return self.path, sub
        raise ModelLoadError(
            "no guidance encoder: the stack has no guidance_encoder/ or clip/ folder",
            where=self.path,
            fix="set zoo.guidance_encoder, e.g. openai/clip-vit-base-patch32 for SD v1.4",
        )

    @cached_property
    def guidance(self) -> GuidanceEncoder:
        from transformers import CLIPVisionModel

        spec, sub = self.guidance_spec()
        tower = load_pretrained(
            CLIPVisionModel,
            spec,
            sub,
            "guidance encoder",
            download=self.config.download,
            revision=self.config.revision,
            torch_dtype=self.dtype,
        )
        enc = GuidanceEncoder(
            tower,
            self.config.guidance_layers,
            self.config.guidance_normalization,
            antialias=self.config.guidance_antialias,
        )
        return enc.to(self.device).eval().requires_grad_(False)

    # ------------------------------------------------------------ derived facts

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_config["block_out_channels"]) - 1)

    def _model_config(self, name: str, cls_name: str) -> dict:
        """A component's config: from the loaded model if there is one, else read from
        ``<name>/config.json`` alone."""
        if name in self.__dict__:
            return dict(self.__dict__[name].config)
        import diffusers

        return dict(
            load_pretrained(
                getattr(diffusers, cls_name),
                self.path,
                name,
                f"{name} config",
                method="load_config",
                revision=self.config.revision,
            )
        )

    @cached_property
    def unet_config(self) -> dict:
        """The UNet's config without instantiating the UNet (``extract`` needs only its sample size; SD v1.4's
        UNet is 3.4 GB in fp32)."""
        return self._model_config("unet", "UNet2DConditionModel")

    @cached_property
    def vae_config(self) -> dict:
        """The VAE's config without instantiating it (``extract`` of c or g alone needs
        none of its weights)."""
        return self._model_config("vae", "AutoencoderKL")

    @property
    def resolution(self) -> int:
        """Pixel size the stack works at (512 for SD v1.4, 64 for the in-silico mini zoo)."""
        size = self.unet_config["sample_size"]
        return int(size if isinstance(size, int) else size[0]) * self.vae_factor

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.resolution // self.vae_factor
        return (int(self.vae_config["latent_channels"]), side, side)

    # ------------------------------------------------------------ helpers used by several stages

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """Last hidden state of the text encoder (after its final LayerNorm), padded to max length."""
        tok = self.tokenizer(
            captions,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        out = self.text_encoder(tok.input_ids.to(self.device))
        return out[0] if isinstance(out, tuple) else out.last_hidden_state

    def unconditional(self, batch: int = 1) -> torch.Tensor:
        return self.encode_text([""]).expand(batch, -1, -1)
