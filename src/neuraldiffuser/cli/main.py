"""Entry point: ``neuraldiffuser <stage> ...``.

Errors a user can act on print as one line and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys

import typer

from . import stages

app = typer.Typer(
    name="neuraldiffuser",
    help=(
        "Reconstruct seen images from fMRI with guided diffusion (NeuralDiffuser, MindDiffuser, NeuroPictor-style).\n\n"
        "Stages: simulate → inspect → extract → train → decode → reconstruct → evaluate → report; `demo` runs them all "
        "on simulated data. Add --debug before any command for full tracebacks."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stages.register(app)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    from ..errors import NeuralDiffuserError

    try:
        app(args=argv, standalone_mode=False)
    except NeuralDiffuserError as exc:
        if debug:
            raise
        from rich.console import Console

        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {exc.format()}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
