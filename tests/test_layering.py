"""Imports point downward: the zoo (model loading) never imports the sampler, which builds on it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "neuraldiffuser"


def imported_packages(folder: Path) -> set[str]:
    """Top-level neuraldiffuser sub-packages imported anywhere under ``folder`` (relative or
    absolute imports)."""
    out = set()
    for path in folder.rglob("*.py"):
        depth = len(path.relative_to(SRC).parts) - 1  # how many packages deep the module sits
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                if node.level == 0 and node.module.startswith("neuraldiffuser."):
                    out.add(node.module.split(".")[1])
                elif node.level > depth:  # climbs out of the sub-package: ..x from zoo/, ...x from zoo/train/
                    out.add(node.module.split(".")[0])
    return out


def test_zoo_does_not_import_sampling():
    assert "sampling" not in imported_packages(SRC / "zoo")
    assert "zoo" in imported_packages(SRC / "sampling")  # the direction that is meant
