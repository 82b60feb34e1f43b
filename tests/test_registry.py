"""The one method registry: the docs/sampler.md example works, bad targets fail clearly, trained
methods derive from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuraldiffuser.errors import ConfigError
from neuraldiffuser.sampling import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "sampler.md"


@pytest.fixture
def clean_registry():
    methods, trained = dict(registry.METHODS), set(registry.TRAINED)
    yield
    registry.METHODS.clear()
    registry.METHODS.update(methods)
    registry.TRAINED.clear()
    registry.TRAINED.update(trained)


def test_the_documented_register_example_works(clean_registry):
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "register(" in b)
    exec(compile(block, str(DOC), "exec"), {})
    name = re.search(r'register\("([^"]+)"', block).group(1)
    from neuraldiffuser.methods.minddiffuser.method import MindDiffuserMethod

    assert isinstance(registry.get_method(name), MindDiffuserMethod)


def test_bad_targets_and_names_fail_in_one_line(clean_registry):
    with pytest.raises(ConfigError, match="not 'package.module:ClassName'"):
        registry.register("x", "no_colon_here")
    registry.register("broken", "neuraldiffuser.methods.minddiffuser:NoSuchClass")
    with pytest.raises(ConfigError, match="method 'broken' cannot be loaded"):
        registry.get_method("broken")
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        registry.get_method("nope")


def test_trained_methods_come_from_the_same_registry(clean_registry, tmp_path):
    import json

    from neuraldiffuser.methods import run_method
    from neuraldiffuser.sampling.methods import METHODS

    assert METHODS is registry.METHODS and registry.trained_methods() == ("minddiffuser", "neuropictor")
    (tmp_path / "decoders").mkdir()
    (tmp_path / "decoders" / "manifest.json").write_text(json.dumps({"method": "mine"}))
    assert run_method(tmp_path) is None
    registry.register("mine", "somewhere.mine:Mine", trains=True)
    assert run_method(tmp_path) == "mine"


def test_one_reader_for_every_runs_manifest(tmp_path):
    import json

    from neuraldiffuser.errors import ModelLoadError
    from neuraldiffuser.training.manifest import read_manifest

    with pytest.raises(
        ModelLoadError, match=r"no fitted MindDiffuser decoders .* --method minddiffuser --out RUN"
    ):
        read_manifest(tmp_path, "minddiffuser")
    (tmp_path / "decoders").mkdir()
    (tmp_path / "decoders" / "manifest.json").write_text(json.dumps({"subject": "subj01"}))
    assert (
        read_manifest(tmp_path, "neuraldiffuser")["subject"] == "subj01"
    )  # no 'method': NeuralDiffuser's own
    with pytest.raises(ModelLoadError, match="holds 'neuraldiffuser' decoders, not neuropictor's"):
        read_manifest(tmp_path, "neuropictor")
