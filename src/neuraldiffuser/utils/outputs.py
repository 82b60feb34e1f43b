"""Output paths checked before any work: a run must not fail at its end because its output
cannot be written."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError


def _existing_ancestor(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def check_output(path: str | Path, *, folder: bool, what: str = "output") -> Path:
    """Refuse an output ``path`` that cannot be written, naming it; creates nothing.

    ``folder``: the output is a folder (else a file). Refused: a file where a folder belongs (or the reverse),
    a file on the way to it, and a place where no file can be created (read-only, no permission). Writability
    is probed by creating and deleting a temporary file, because permission bits do not bind root.
    """
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        other = "file" if folder else "folder"
        raise OutputError(
            f"the {what} {kind} is an existing {other}",
            where=str(path),
            fix=f"give a {kind} path, or move the {other} away",
        )
    base = _existing_ancestor(path if folder else path.parent)
    if not base.is_dir():
        raise OutputError(
            f"cannot create the {what} {kind}: {base} is a file",
            where=str(path),
            fix="choose a path under a folder",
        )
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".nd-write-probe-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write the {what} {kind} under {base} ({exc.strerror or exc})",
            where=str(path),
            fix="choose a writable location",
        ) from None
    if not folder and path.is_file():
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise OutputError(
                f"the {what} file cannot be written ({exc.strerror or exc})",
                where=str(path),
                fix="choose a writable location",
            ) from None
    return path


@contextmanager
def exclusive_output(path: str | Path, *, folder: bool, what: str = "output"):
    """Hold a lock file in ``path`` (a folder, created) or beside it (a file) while a command writes it; a
    second writer is refused at once. The processes of one distributed launch lock per rank
    (RANK), so they share it.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    rank = os.environ.get("RANK", "0")
    if folder:
        path.mkdir(parents=True, exist_ok=True)
        lock_path = path / f".lock-rank{rank}"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(f".{path.name}.lock-rank{rank}")
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(
            f"another process is writing this {what} (it holds {lock_path.name})",
            where=str(path),
            fix="wait for it to finish, or choose another output",
        ) from None
    try:
        yield path
    finally:
        lock.release()
