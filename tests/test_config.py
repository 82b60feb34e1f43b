"""Config presets, overrides and the unknown-key errors."""

from __future__ import annotations

import pytest

from neuraldiffuser.config import PRESETS, load_config, parse_overrides, save_config
from neuraldiffuser.config.load import load_run_config
from neuraldiffuser.errors import ConfigError


def test_presets_exist_and_load():
    assert {"mini", "paper"} <= set(PRESETS)
    paper = load_config("paper")
    assert paper.preset == "paper" and paper.data.zscore == "none" and paper.data.layout == "mindeye2"
    mini = load_config("mini")
    assert mini.data.zscore == "train"


def test_unknown_key_names_closest_valid_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  subjet: subj02\n")
    with pytest.raises(ConfigError) as info:
        load_config("mini", files=[bad])
    msg = str(info.value)
    assert "unknown key 'data.subjet'" in msg and "did you mean 'data.subject'" in msg and "bad.yaml" in msg


def test_unknown_top_level_section():
    with pytest.raises(ConfigError, match="unknown key 'dat'.*did you mean 'data'"):
        load_config(overrides=parse_overrides(["dat.subject=subj01"]))


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match="key 'data.average'"):
        load_config(overrides={"data": {"average": "median"}})


def test_unknown_preset():
    with pytest.raises(ConfigError, match="did you mean 'mini'"):
        load_config("minni")


def test_overrides_parse_yaml_values_and_round_trip(tmp_path):
    ov = parse_overrides(["data.sessions=2", "data.subject=subj03", "seed=7"])
    assert ov == {"data": {"sessions": 2, "subject": "subj03"}, "seed": 7}
    cfg = load_config("mini", overrides=ov)
    assert cfg.data.sessions == 2 and cfg.seed == 7
    save_config(cfg, tmp_path / "run")
    assert load_run_config(tmp_path / "run") == cfg
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["data.sessions"])
