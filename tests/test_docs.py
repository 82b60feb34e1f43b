"""docs/config.md is generated from the config code: it must equal a fresh rendering and list every key."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from neuraldiffuser.config import PRESETS, Config, load_config, parse_overrides
from neuraldiffuser.config.base import Section
from neuraldiffuser.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "config.md"
CELL_SPLIT = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location(
        "config_reference", REPO / "scripts" / "config_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def rows_by_heading(text: str) -> dict[str, list[list[str]]]:
    """{'## heading': [cells of each table row under it]} (header and rule rows left out)."""
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = []
        elif current and line.startswith("| `"):
            out[current].append([c.strip() for c in CELL_SPLIT.split(line)[1:-1]])
    return out


def unwrap(cell: str) -> tuple[str, bool]:
    """(the YAML inside a value cell, whether it is bold)."""
    bold = cell.startswith("**") and cell.endswith("**")
    inner = cell[2:-2] if bold else cell
    assert inner.startswith("`") and inner.endswith("`"), cell
    return inner[1:-1], bold


def test_config_md_matches_the_code(ref, doc):
    fresh = ref.render()
    if fresh != doc:
        diff = "".join(
            list(
                difflib.unified_diff(
                    doc.splitlines(True), fresh.splitlines(True), "docs/config.md", "rendered"
                )
            )[:40]
        )
        pytest.fail(f"docs/config.md is stale: run `python scripts/config_reference.py`\n{diff}")


def test_every_section_and_field_has_exactly_one_row(doc):
    rows = rows_by_heading(doc)
    top = [
        name
        for name, f in Config.model_fields.items()
        if not isinstance(f.annotation, type) or not issubclass(f.annotation, Section)
    ]
    assert [r[0] for r in rows["top level"]] == [f"`{n}`" for n in top] == ["`preset`", "`seed`"]
    sections = {name: f.annotation for name, f in Config.model_fields.items() if name not in top}
    assert len(sections) >= 11
    for name, cls in sections.items():
        assert name in rows, f"no '## {name}' section in docs/config.md"
        assert [r[0] for r in rows[name]] == [f"`{name}.{field}`" for field in cls.model_fields], name
        assert all(len(r) == 3 + len(PRESETS) + 1 for r in rows[name])


def test_value_cells_load_back_to_the_resolved_values(doc):
    """Each default/preset cell is YAML for the value load_config gives; bold exactly where it differs
    from the default."""
    dumps = {"default": Config().model_dump(mode="json")} | {
        p: load_config(p).model_dump(mode="json") for p in PRESETS
    }
    checked = 0
    for heading, rows in rows_by_heading(doc).items():
        if heading not in dumps["default"] and heading != "top level":
            continue
        for cells in rows:
            key = cells[0].strip("`").split(".")
            pick = lambda d, key=key: d[key[0]] if len(key) == 1 else d[key[0]][key[1]]  # noqa: E731
            default_text, default_bold = unwrap(cells[2])
            assert not default_bold and yaml.safe_load(default_text) == pick(dumps["default"]), cells[0]
            for column, preset in enumerate(PRESETS, start=3):
                text, bold = unwrap(cells[column])
                assert yaml.safe_load(text) == pick(dumps[preset]), (cells[0], preset)
                assert bold == (pick(dumps[preset]) != pick(dumps["default"])), (cells[0], preset)
                checked += 1
    assert checked >= 2 * 150


def test_documented_paper_values_are_the_released_settings(doc):
    """Spot checks against values stated in the reference (κ, η, steps, decoder width)."""
    rows = {r[0]: r for rs in rows_by_heading(doc).values() for r in rs}
    paper = 3 + PRESETS.index("paper")
    assert yaml.safe_load(unwrap(rows["`sampler.kappa`"][paper])[0]) == 300000.0
    assert yaml.safe_load(unwrap(rows["`sampler.eta`"][paper])[0]) == 0.2
    assert yaml.safe_load(unwrap(rows["`decoder.hidden`"][paper])[0]) == 4096
    assert unwrap(rows["`zoo.path`"][paper]) == ("CompVis/stable-diffusion-v1-4", True)
    assert unwrap(rows["`sampler.autocast`"][3 + PRESETS.index("mini")]) == (
        "'off'",
        True,
    )  # quoted: YAML reads off as false


def test_unknown_key_example_in_the_header_is_the_real_message(doc):
    with pytest.raises(ConfigError) as info:
        load_config("paper", overrides=parse_overrides(["sampler.kapa=1"]))
    assert f"error: {info.value}" in doc


class _Example(Section):
    alpha: int = Field(3, ge=1)
    """First | line
    continues <here> with *stars*."""
    beta: str | None = None
    gamma: float = Field(0.5, gt=0, lt=1)
    """Last."""


def test_field_sources_and_cells_on_a_known_class(ref):
    assert ref.field_sources(_Example) == {
        "alpha": ("int", "First | line\ncontinues <here> with *stars*."),
        "beta": ("str | None", ""),
        "gamma": ("float", "Last."),
    }
    fields = _Example.model_fields
    assert ref.constraints(fields["alpha"]) == "≥ 1" and ref.constraints(fields["gamma"]) == "> 0, < 1"
    assert (
        ref.md_text("First | line\ncontinues <here> with *stars*.")
        == r"First \| line continues &lt;here> with \*stars\*."
    )
    assert ref.md_code("str | None") == r"`str \| None`"
    for value in (None, "off", "yes", 1e-5, 3e5, [0.004, 0.0075], ["c", "g"], "builtin:insilico-64", True, 0):
        assert yaml.safe_load(ref.yaml_value(value)) == value


@pytest.mark.parametrize("page", ["README.md", "docs/config.md", "docs/paper-scale.md"])
def test_relative_links_point_at_existing_files(page):
    path = REPO / page
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [link for link in links if "://" not in link]
    assert local, f"{page} has no relative links"
    missing = [link for link in local if not (path.parent / link).exists()]
    assert not missing, f"{page} links to missing files: {missing}"
