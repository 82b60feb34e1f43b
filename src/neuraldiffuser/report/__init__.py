"""Reports: a self-contained HTML file (``html.write_report``) with matplotlib figures (``figures``).

Nothing heavy is imported here; ``neuraldiffuser report RUN_DIR...`` is the command.
"""

__all__ = ["write_report"]


def __getattr__(name):
    if name == "write_report":
        from .html import write_report

        return write_report
    raise AttributeError(name)
