"""Disk space and write failures: checked before a long write starts, and turned into one clear error
(which file, what was needed, what is free) instead of a half-written file that looks finished."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

from ..errors import RunError

MARGIN = 1 << 20  # HDF5 metadata and small files beside the data


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def require_free_space(
    path: str | os.PathLike, need: int, what: str, name: str | os.PathLike | None = None
) -> None:
    """Refuse to start writing ``what`` to ``path`` when its file system has less than ``need`` bytes free
    (``name``: the path the error names)."""
    if need <= 0:
        return
    free = shutil.disk_usage(_existing_parent(Path(path))).free
    if free < need + MARGIN:
        a, b = human(need + MARGIN), human(free)
        if a == b:
            a, b = f"{need + MARGIN} B", f"{free} B"
        raise RunError(
            f"not enough free space for {what}: needs {a}, {b} free",
            where=str(name or path),
            fix="free space on that disk or write to another folder (--out)",
        )


def allocated_bytes(path: str | os.PathLike) -> int:
    """Bytes the file holds on disk (a sparse file holds fewer than its size)."""
    st = os.stat(path)
    return int(getattr(st, "st_blocks", 0)) * 512 or st.st_size


def reserve(path: str | os.PathLike, name: str | os.PathLike | None = None) -> None:
    """Allocate the blocks of a (sparse) file now, so that writing its rows later cannot run out of space.
    ``name``: the path errors name (the final one when ``path`` is a temporary)."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        raise write_error(name or path, exc) from None
    finally:
        os.close(fd)


def is_space_error(exc: BaseException) -> bool:
    """A write that failed for want of space (or a file-size limit), from its errno or, for libraries that
    wrap it (HDF5, safetensors), its message."""
    text = str(exc)
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(
        s in text
        for s in (
            "No space left",
            "Disk quota",
            "File too large",
            "errno = 28",
            "errno = 27",
            "errno = 122",
            "os error 28",
            "os error 27",
            "os error 122",
        )
    )


def write_error(path: str | os.PathLike, exc: BaseException, rows: str = "") -> RunError:
    """One-line error for a failed write; ``rows`` says what was (not) recorded as done."""
    text = str(exc).strip()
    reason = re.search(r"error message = '([^']*)'", text)  # HDF5's driver error carries the OS's message
    first = reason.group(1) if reason else (text.splitlines()[0] if text else type(exc).__name__)
    what = "disk full while writing" if is_space_error(exc) else f"write failed ({first})"
    if rows:
        what += f"; {rows}"
    fix = (
        "free space on that disk (or write elsewhere with --out) and run the same command again"
        if is_space_error(exc)
        else "check that the location is writable and the disk healthy, then run the same command again"
    )
    return RunError(what, where=str(path), fix=fix)
