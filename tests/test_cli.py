"""Every stage has a command with help; commands not built yet say so and exit non-zero."""

from __future__ import annotations

import pytest

from neuraldiffuser.cli.main import main

STAGES = [
    "simulate",
    "inspect",
    "extract",
    "train",
    "decode",
    "reconstruct",
    "evaluate",
    "evaluate-images",
    "report",
    "demo",
]


@pytest.mark.parametrize("stage", STAGES)
def test_help_says_what_it_reads_and_writes(capsys, stage):
    assert main([stage, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Reads:" in out and "Writes:" in out


def test_inspect_prints_a_table(capsys, generic_dir):
    assert main(["inspect", str(generic_dir)]) == 0
    out = capsys.readouterr().out
    assert "subj01" in out and "subj02" in out and "layout=generic" in out
