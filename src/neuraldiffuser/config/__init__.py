"""Configs: YAML presets validated against typed sections.

Resolution order: section defaults < preset YAML < user YAML files < ``key=value`` overrides.
"""

from .load import PRESETS, load_config, parse_overrides, save_config
from .schema import Config

__all__ = ["Config", "PRESETS", "load_config", "parse_overrides", "save_config"]
