"""Command-line interface: one sub-command per pipeline stage (see ``neuraldiffuser --help``)."""
