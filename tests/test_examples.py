"""The gallery in examples/ runs, at a small size (NEURALDIFFUSER_EXAMPLE_SIZE=small), in this process so the
heavy imports are shared; the three demo examples share one tiny demo run."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ORDER = ["plot_own_arrays.py", "plot_demo_pipeline.py", "plot_kappa_eta_sweep.py", "plot_score_folder.py"]

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def out(small_demo, tmp_path_factory):
    """The examples' output folder, holding a copy of the session's tiny demo run (OUT/demo),
    which they reuse."""
    import shutil

    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(small_demo / "demo", root / "demo")
    return root


def test_every_example_is_listed_and_linked_from_the_readme():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(ORDER)
    readme = (EXAMPLES.parent / "README.md").read_text()
    assert all(f"examples/{name}" in readme for name in ORDER)


@pytest.mark.parametrize("name", ORDER)
def test_example_runs(name, out, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("NEURALDIFFUSER_EXAMPLE_SIZE", "small")
    monkeypatch.setenv("NEURALDIFFUSER_EXAMPLE_OUT", str(out))
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        plt.close("all")
    printed = capsys.readouterr().out
    checks = {
        "plot_own_arrays.py": (out / "own_arrays" / "reconstructions.png", "PixCorr"),
        "plot_demo_pipeline.py": (out / "demo_pipeline" / "README.md", "identical images: True"),
        "plot_kappa_eta_sweep.py": (out / "kappa_eta_sweep.png", "kappa 300, eta 0.6"),
        "plot_score_folder.py": (out / "my_reconstructions", "mean over 4 images"),
    }
    path, text = checks[name]
    assert path.exists() and text in printed
