"""Device names checked at the command line, so a missing GPU is one line instead of a CUDA traceback."""

from __future__ import annotations

from ..errors import ConfigError


def check_device(device: str | None, where: str) -> None:
    """Refuse a device string torch cannot parse, or a CUDA/MPS device this machine does not have."""
    if device in (None, "auto", "cpu"):
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"'{device}' is not a device ({str(exc).splitlines()[0]})",
            where=where,
            fix="use auto, cpu, cuda or cuda:N",
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"'{device}' asked for, but this machine has no CUDA GPU",
                where=where,
                fix="use cpu (or auto)",
            )
        if dev.index is not None and dev.index >= count:
            raise ConfigError(
                f"'{device}' asked for, but this machine has {count} CUDA GPU(s): cuda:0…cuda:{count - 1}",
                where=where,
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"'{device}' asked for, but MPS is not available here", where=where, fix="use cpu (or auto)"
        )
