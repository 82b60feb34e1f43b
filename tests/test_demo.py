"""The demo's orchestration: stage order, reuse of finished stages, config, summary (the stages have
their own tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuraldiffuser import demo


def metrics_doc(rows):
    return {"rows": rows}


def test_setting_labels_say_guided_or_unguided():
    assert (
        demo.setting_label({"method": "neuraldiffuser", "setting": "kappa=300_eta=0.4"})
        == "guided (κ=300, η=0.4)"
    )
    assert demo.setting_label({"method": "neuraldiffuser", "setting": "kappa=0_eta=0"}) == "unguided (κ=0)"
    assert demo.setting_label({"method": "minddiffuser", "setting": "default"}) == "minddiffuser default"


def test_summary_keeps_repeat0_rows_and_marks_unavailable_metrics(tmp_path):
    rows = [
        {
            "method": "neuraldiffuser",
            "setting": "kappa=300_eta=0.4",
            "policy": "repeat0",
            "values": {"PixCorr": 0.4, "SSIM": 0.7, "mini-CLIP 2-way": {"unavailable": "no weights"}},
        },
        {
            "method": "neuraldiffuser",
            "setting": "kappa=300_eta=0.4",
            "policy": "mean",
            "values": {"PixCorr": 0.9},
        },
    ]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics_doc(rows)))
    (row,) = demo.summary_rows(path)
    assert row["setting"] == "guided (κ=300, η=0.4)" and row["folder"] == "neuraldiffuser/kappa=300_eta=0.4"
    assert row["PixCorr"] == 0.4 and row["SSIM"] == 0.7 and row["mini-CLIP 2-way"] == "unavailable"
    assert row["EffNet-Lite0 2-way"] is None  # not computed at all


@pytest.fixture
def fake_stages(monkeypatch):
    """Stages that record their calls and the config they were given; evaluate writes a metrics.json."""
    calls = []

    def make(name):
        def stage(config, paths):
            calls.append((name, config))
            if name == "evaluate":
                paths.recon.mkdir(parents=True, exist_ok=True)
                rows = [
                    {
                        "method": "neuraldiffuser",
                        "setting": "kappa=0_eta=0",
                        "policy": "repeat0",
                        "values": {"SSIM": 0.5},
                    }
                ]
                (paths.recon / "metrics.json").write_text(json.dumps(metrics_doc(rows)))
            return f"{name} done"

        return stage

    monkeypatch.setattr(demo, "STAGES", [(name, make(name)) for name, _ in demo.STAGES])
    return calls


def test_run_demo_runs_every_stage_in_order_on_the_mini_preset(tmp_path, fake_stages, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "demo"
    result = demo.run_demo(
        "demo", overrides={"sampler": {"kappa": 123.0}}
    )  # relative: saved configs still hold absolute paths
    assert [name for name, _ in fake_stages] == [
        "simulate",
        "extract",
        "train",
        "decode",
        "reconstruct",
        "evaluate",
        "report",
    ]
    config = fake_stages[0][1]
    assert (
        config.preset == "mini" and config.data.path == str(out / "data") and config.data.subject == "subj01"
    )
    assert (
        config.sampler.repeats == demo.DEMO_REPEATS
        and config.sampler.steps == demo.DEMO_STEPS
        and config.sampler.kappa == 123.0
    )  # user overrides win
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["seconds"]) == {name for name, _ in demo.STAGES} | {"total"}
    assert (
        summary["rows"] == result.rows
        and result.rows[0]["setting"] == "unguided (κ=0)"
        and result.rows[0]["SSIM"] == 0.5
    )
    assert summary["guided_minus_unguided"] == result.guidance == []  # the fake rows have no per-image values
    assert (out / "config.yaml").is_file()


def test_fresh_starts_from_an_empty_folder(tmp_path, fake_stages):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    demo.run_demo(out)
    assert (out / "stale.txt").exists()  # a normal run keeps (and reuses) what is there
    demo.run_demo(out, fresh=True)
    assert not (out / "stale.txt").exists() and (out / "demo_summary.json").exists()


def test_figure_has_a_row_per_setting_and_a_column_per_image(tmp_path, generic_dir):
    from PIL import Image

    paths = demo.DemoPaths(tmp_path)
    paths.data = generic_dir
    images = [3, 1]
    for setting, value in (("kappa=300_eta=0.4", 40), ("kappa=0_eta=0", 200)):
        folder = paths.recon / "neuraldiffuser" / setting
        (folder / "images").mkdir(parents=True)
        files = {}
        for i in images:
            Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(folder / "images" / f"{i:05d}_r0.png")
            files[str(i)] = [f"images/{i:05d}_r0.png"]
        (folder / "manifest.json").write_text(
            json.dumps({"method": "neuraldiffuser", "setting": setting, "images": images, "files": files})
        )
    demo.write_figure(paths, paths.figure)
    fig = np.asarray(Image.open(paths.figure).convert("RGB")).astype(int)
    # three rows of two tiles: the stimulus row, then guided (dark, 40) above unguided (light, 200)
    dark = np.argwhere(np.abs(fig - 40).sum(-1) == 0)
    light = np.argwhere(np.abs(fig - 200).sum(-1) == 0)
    assert len(dark) > 2 * 80 * 80 and len(light) > 2 * 80 * 80
    assert dark[:, 0].max() < light[:, 0].min()


def test_guidance_rows_give_guided_minus_unguided_paired_over_images(tmp_path):
    def row(setting, kappa, ssim, policy="repeat0"):
        return {
            "method": "neuraldiffuser",
            "setting": setting,
            "policy": policy,
            "sweep": [kappa, 0.4],
            "images": [4, 5, 6],
            "params": {"kappa": kappa, "targets": "decoded"},
            "values": {"SSIM": float(np.mean(ssim))},
            "per_image": {"SSIM": ssim, "mini-CLIP dist": [0.0, 0.0, 0.0]},
        }

    path = tmp_path / "metrics.json"
    path.write_text(
        json.dumps(
            metrics_doc(
                [
                    row("kappa=0_eta=0", 0.0, [0.5, 0.6, 0.7]),
                    row("kappa=30_eta=0.4", 30.0, [0.6, 0.6, 0.9]),
                    row("kappa=0_eta=0", 0.0, [0.5, 0.5, 0.5], "mean"),
                    row("kappa=30_eta=0.4", 30.0, [0.4, 0.4, 0.4], "mean"),
                ]
            )
        )
    )
    first, second = demo.guidance_rows(path)
    assert (first["setting"], first["policy"], second["policy"]) == (
        "guided (κ=30, η=0.4)",
        "repeat0",
        "mean",
    )
    assert first["SSIM"]["mean"] == pytest.approx(0.1) and first["SSIM"]["se"] == pytest.approx(
        np.std([0.1, 0.0, 0.2], ddof=1) / np.sqrt(3)
    )
    assert second["SSIM"]["mean"] == pytest.approx(-0.1)
    assert "mini-CLIP dist" not in first  # only the summary's metrics
