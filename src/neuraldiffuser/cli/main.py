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
        "Reconstruct seen images from fMRI with guided diffusion (NeuralDiffuser, "
        "MindDiffuser, NeuroPictor-style).\n\nStages: simulate → inspect → extract "
        "→ train → decode → reconstruct → evaluate → report; `demo` runs them all "
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
        code = app(args=argv, prog_name="neuraldiffuser", standalone_mode=False)
    except NeuralDiffuserError as exc:
        if debug:
            raise
        _print_error(exc.format())
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        handled = _click_exit(exc)
        if handled is None and not debug:
            handled = _os_error(exc)
        if handled is None:
            raise
        return handled
    # typer turns Ctrl-C into Exit(130), which standalone_mode=False hands back as the return value
    if isinstance(code, int) and code == 130:
        return _interrupted(argv)
    return code if isinstance(code, int) else 0


def _print_error(message: str) -> None:
    """One red line; the message is escaped so that text such as ``[finetune]`` is printed,
    not eaten as markup."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def _interrupted(argv: list[str]) -> int:
    """Exit 130 (128 + SIGINT) with one line that says how to go on."""
    if argv[:1] == ["train"] and "--resume" not in argv:
        how = "checkpoints are kept; add --resume to the same command to continue"
    else:
        how = "finished outputs are kept; run the same command again to resume"
    print(f"interrupted: {how}", file=sys.stderr)
    return 130


def _click_exit(exc: Exception) -> int | None:
    """Usage errors, Exit and Abort of the click that typer uses: its bundled copy (typer._click with Exit and
    Abort in typer.exceptions, typer ≥ 0.26) or, with older typer, the separate click package."""
    import importlib

    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            errors = importlib.import_module(name)
        except ImportError:
            continue
        if isinstance(exc, getattr(errors, "ClickException", ())):
            exc.show()  # the usage line, a "Try --help" hint and "Error: ..."
            return exc.exit_code
        if isinstance(exc, getattr(errors, "Exit", ())):
            return exc.exit_code
        if isinstance(exc, getattr(errors, "Abort", ())):
            return 1
    return None


def _os_error(exc: Exception) -> int | None:
    """A file-system refusal not caught earlier (permission, a file where a folder belongs,
    disk full): one line."""
    import shutil

    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, dst, why = exc.args[0][0]  # copytree gathers (source, destination, reason) per failed file
        _print_error(f"copying {src} to {dst}: {why}")
        return 1
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    where = exc.filename if exc.filename is not None else None
    what = exc.strerror or str(exc)
    _print_error(f"{where}: {what}" if where else what)
    return 1


if __name__ == "__main__":
    sys.exit(main())
