"""Atomic training checkpoints: every process writes into a hidden folder, then the main process renames it.

A checkpoint is ``step-00000100/`` holding accelerate's state (model, optimiser, grad scaler, RNG
states, registered objects such as the LR schedule) and ``trainer_state.json`` (the step counter).
A folder without ``trainer_state.json`` is never picked up, so a kill at any moment leaves either
the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write_json

STATE_FILE = "trainer_state.json"


def checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest(root: Path) -> Path | None:
    found = checkpoints(root)
    return found[-1] if found else None


def save(accelerator: Any, root: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically (all processes call this), keeping the newest ``keep``."""
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, {**state, "step": step})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoints(root)[: -max(keep, 1)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(accelerator: Any, path: Path) -> dict[str, Any]:
    """Restore accelerate's state from ``path`` and return its trainer state (with the step)."""
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())
