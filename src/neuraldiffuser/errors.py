"""Error types whose messages say what was wrong, where, and what to do.

The CLI prints these as one line (no traceback unless ``--debug``) and exits non-zero.
"""

from __future__ import annotations


class NeuralDiffuserError(Exception):
    """Base class for errors a user can act on."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.format())

    def format(self) -> str:
        msg = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            msg += f" — {self.fix}"
        return msg


class DataError(NeuralDiffuserError):
    """A dataset file, key, column or value is missing or not what was expected."""


class RunError(NeuralDiffuserError):
    """A stage failed while running on valid input: a write failed (disk full), training diverged
    (not a usage error)."""

    exit_code = 1


class ConfigError(NeuralDiffuserError):
    """A configuration key or value is invalid."""


class ModelLoadError(NeuralDiffuserError):
    """Weights or a model folder could not be found or loaded."""


class OutputError(NeuralDiffuserError):
    """An output path cannot be written: a file where a folder belongs, a read-only place, or
    another run's lock."""
