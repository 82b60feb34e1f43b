"""Notice when a launch meant for several processes runs one.

``accelerate launch --num_processes 2`` without ``--multi_gpu`` (or on a machine without GPUs) starts a
single ordinary process and says nothing: the run is then correct but N times slower than planned. The
number asked for is read from ``ACCELERATE_NUM_PROCESSES`` / ``NEURALDIFFUSER_EXPECT_PROCESSES`` when set,
else from the parent ``accelerate launch`` command line (Linux ``/proc``), and compared with the number
that runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV_KEYS = ("NEURALDIFFUSER_EXPECT_PROCESSES", "ACCELERATE_NUM_PROCESSES")


def parse_num_processes(argv: list[str]) -> int | None:
    """``--num_processes N`` (or ``--num-processes``, ``=N``) of an ``accelerate launch`` command line."""
    head = argv[:3]
    is_launch = any(a.endswith(("accelerate.commands.launch", "commands/launch.py")) for a in head) or (
        any(os.path.basename(a) == "accelerate" for a in head) and "launch" in argv[:4]
    )
    if not is_launch:
        return None
    for i, arg in enumerate(argv):
        m = re.fullmatch(r"--num[_-]processes(?:=(\d+))?", arg)
        if m:
            value = m.group(1) or (argv[i + 1] if i + 1 < len(argv) else "")
            return int(value) if value.isdigit() else None
    return None


def requested_processes() -> tuple[int | None, str]:
    """(processes the launch asked for, where that was read); (None, "") when nothing says."""
    for key in ENV_KEYS:
        value = os.environ.get(key, "")
        if value.isdigit():
            return int(value), key
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None, ""
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    n = parse_num_processes(argv)
    return (n, "accelerate launch --num_processes") if n else (None, "")


def launch_warning(running: int) -> str | None:
    """A one-line warning when fewer processes run than were asked for, else None."""
    asked, source = requested_processes()
    if asked is None or asked <= running:
        return None
    return (
        f"the launch asked for {asked} processes ({source}) but {running} is "
        "running: on a machine without GPUs `accelerate launch` needs --multi_gpu "
        "(or use `torchrun --nproc_per_node N`) to start several CPU processes"
    )


def warn_launch(running: int, is_main: bool = True) -> str | None:
    """Print ``launch_warning`` on the main process (stderr) and return it for the run's summary."""
    message = launch_warning(running)
    if message and is_main:
        from .progress import console

        console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    return message
