"""Registers every stage command. Each stage keeps its command in its own module."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from . import (
        cmd_decode,
        cmd_demo,
        cmd_evaluate,
        cmd_evaluate_images,
        cmd_extract,
        cmd_import,
        cmd_inspect,
        cmd_reconstruct,
        cmd_report,
        cmd_simulate,
        cmd_train,
        cmd_zoo,
    )

    for module in (
        cmd_simulate,
        cmd_import,
        cmd_inspect,
        cmd_extract,
        cmd_train,
        cmd_decode,
        cmd_reconstruct,
        cmd_evaluate,
        cmd_evaluate_images,
        cmd_report,
        cmd_demo,
    ):
        app.command(name=module.NAME, help=module.__doc__)(module.command)
    app.add_typer(cmd_zoo.app, name="zoo")
