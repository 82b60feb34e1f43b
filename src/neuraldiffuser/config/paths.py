"""Relative paths in a config made absolute, so that a saved run config works from any directory."""

from __future__ import annotations

from pathlib import Path

from .schema import Config

# always file-system paths
PATH_KEYS = ("data.path", "data.captions", "evaluate.torch_home", "evaluate.cache_dir", "neuropictor.run")
# a folder or a hub id / builtin:<name>: made absolute only when such a folder exists here
FOLDER_OR_ID_KEYS = ("zoo.path", "zoo.guidance_encoder", "evaluate.mini_clip", "evaluate.clip_model")


def absolute_paths(config: Config) -> Config:
    """Rewrite (in place) every relative path of ``config`` against the working directory;
    returns ``config``."""
    for key in (*PATH_KEYS, *FOLDER_OR_ID_KEYS):
        section, name = key.split(".")
        node = getattr(config, section)
        value = getattr(node, name)
        if not value or str(value).startswith("builtin:"):
            continue
        path = Path(value).expanduser()
        if path.is_absolute() or (key in FOLDER_OR_ID_KEYS and not path.exists()):
            continue
        setattr(node, name, str(path.absolute()))
    return config
