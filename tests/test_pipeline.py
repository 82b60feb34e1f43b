"""NeuralDiffuserPipeline: the same numbers as the decode and reconstruct stages, a portable
save, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from neuraldiffuser import ConfigError, DataError, ModelLoadError, NeuralDiffuserPipeline, load_pipeline
from pipeline_fixtures import tiny_run

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_stack, single_thread):
    root = tmp_path_factory.mktemp("pipe")
    run, betas, targets = tiny_run(root, tiny_stack)
    return run, betas[32:], targets, root


@pytest.fixture(scope="module")
def pipe(trained):
    return NeuralDiffuserPipeline.from_pretrained(trained[0], device="cpu")


def test_decode_equals_the_decode_stage(trained, pipe, tmp_path):
    from neuraldiffuser.config.load import load_run_config
    from neuraldiffuser.targets.store import TargetStore
    from neuraldiffuser.training.decode import decode_betas

    run, test, _, _ = trained
    ours = pipe.decode(test)
    assert {k: v.shape for k, v in ours.items()} == {"c": (8, 77, 16), "z": (8, 4, 8, 8), "g": (8, 6, 17, 16)}
    assert all(v.dtype == np.float32 for v in ours.values())
    path = decode_betas(load_run_config(run), run, test, np.arange(32, 40), tmp_path / "decoded.hdf5")
    with TargetStore(path) as st:
        for k in ("c", "z", "g"):
            np.testing.assert_allclose(ours[k], st.get(k, np.arange(8)), atol=1e-6)
    ridge = pipe.decode(test, method="ridge")
    path = decode_betas(
        load_run_config(run), run, test, np.arange(32, 40), tmp_path / "ridge.hdf5", method="ridge"
    )
    with TargetStore(path) as st:
        np.testing.assert_allclose(ridge["z"], st.get("z", np.arange(8)), atol=1e-6)


def test_images_are_the_samplers_for_each_image_seed(pipe):
    from neuraldiffuser.sampling.runner import to_uint8
    from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler

    rng = np.random.default_rng(1)
    t = {
        "c": rng.standard_normal((2, 77, 16)),
        "z": rng.standard_normal((2, 4, 8, 8)),
        "g": rng.standard_normal((2, 6, 17, 16)),
    }
    images = pipe.generate(t, seed=5, images=[7, 3], kappa=20.0, eta=0.5, repeats=2)
    assert images.shape == (2, 2, 16, 16, 3) and images.dtype == np.uint8
    cfg = pipe.sampler_config(kappa=20.0, eta=0.5, repeats=2)
    sampler = NeuralDiffuserSampler(pipe.components, cfg)
    tt = {k: torch.from_numpy(v.astype(np.float32)) for k, v in t.items()}
    for row, image in enumerate([7, 3]):
        expected = to_uint8(sampler(tt["c"][row], tt["z"][row], tt["g"][row], seed=5 + image))
        assert np.array_equal(images[row], expected)
    pil = pipe.generate(t, seed=5, images=[7, 3], kappa=20.0, eta=0.5, repeats=2, output_type="pil")
    assert np.array_equal(np.asarray(pil[1][0]), images[1, 0])
    unguided = pipe.generate({"c": t["c"], "z": t["z"]}, kappa=0)  # no g needed without guidance
    assert unguided.shape == (2, pipe.config.sampler.repeats, 16, 16, 3)


def test_save_move_delete_load_gives_identical_images(trained, tmp_path):
    run, test, _, root = trained
    work = tmp_path / "work"
    shutil.copytree(run, work / "run")
    shutil.copytree(root / "stack", work / "stack")
    cfg_text = (work / "run" / "config.yaml").read_text().replace(str(root / "stack"), str(work / "stack"))
    (work / "run" / "config.yaml").write_text(cfg_text)
    first = NeuralDiffuserPipeline.from_pretrained(work / "run")
    before = first(test[:3], seed=11)
    first.save_pretrained(tmp_path / "saved")
    shutil.copytree(tmp_path / "saved", tmp_path / "elsewhere" / "model")
    shutil.rmtree(tmp_path / "saved")
    shutil.rmtree(work)  # the run, its data and its zoo are gone
    again = NeuralDiffuserPipeline.from_pretrained(tmp_path / "elsewhere" / "model")
    assert np.array_equal(again(test[:3], seed=11), before)
    folder = tmp_path / "elsewhere" / "model"
    info = json.loads((folder / "pipeline.json").read_text())
    assert (
        info["class"] == "NeuralDiffuserPipeline"
        and info["bundled"] == {"path": "zoo"}
        and info["data"]["subject"] == "subj01"
    )
    saved_cfg = (folder / "config.yaml").read_text()
    assert str(tmp_path) not in saved_cfg and "path: zoo" in saved_cfg
    card = (folder / "README.md").read_text()
    assert "subj01, 30 voxels, 32 training images" in card and "preset: mini" in card and "kappa 50.0" in card


def test_model_card_reports_the_runs_scores(trained, tmp_path):
    run, _, _, _ = trained
    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "recon").mkdir()
    rows = [
        {
            "method": "neuraldiffuser",
            "setting": "kappa=50_eta=0.5",
            "policy": "repeat0",
            "values": {"PixCorr": 0.25, "SSIM": 0.5},
        },
        {
            "method": "neuraldiffuser",
            "setting": "kappa=50_eta=0.5",
            "policy": "mean",
            "values": {"PixCorr": 0.9},
        },
    ]
    (copy / "recon" / "metrics.json").write_text(json.dumps({"rows": rows}))
    NeuralDiffuserPipeline.from_pretrained(copy).save_pretrained(tmp_path / "saved", bundle_zoo=False)
    card = (tmp_path / "saved" / "README.md").read_text()
    assert "| kappa=50_eta=0.5 | 0.250 | 0.500 |" in card
    assert json.loads((tmp_path / "saved" / "pipeline.json").read_text())["scores"] == {
        "kappa=50_eta=0.5": {"PixCorr": 0.25, "SSIM": 0.5}
    }
    assert load_pipeline(tmp_path / "saved").subject == "subj01"


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda p, x: p.decode(x[:, :5]),
            DataError,
            r"'betas' has shape \(8, 5\), expected trailing shape \(…, 30\)",
        ),
        (lambda p, x: p.decode(np.where(np.eye(8, 30) > 0, np.nan, x)), DataError, "'betas' holds 8 NaN"),
        (lambda p, x: p.decode(x[0]), DataError, "'betas' must be 2-D or 3-D"),
        (lambda p, x: p.decode(x, subject="subj02"), DataError, "fine-tuned on 'subj01'"),
        (lambda p, x: p.decode(x, method="lasso"), ConfigError, "'method' must be"),
        (lambda p, x: p(x, kappa=-1.0), ConfigError, "kappa"),
        (lambda p, x: p(x, stepz=3), ConfigError, "stepz"),
        (
            lambda p, x: p.generate({"c": np.zeros((2, 77, 16)), "z": np.zeros((3, 4, 8, 8))}, kappa=0),
            DataError,
            "different numbers of rows",
        ),
    ],
)
def test_bad_inputs_fail_with_one_line(pipe, trained, call, error, match):
    with pytest.raises(error, match=match) as exc:
        call(pipe, trained[1])
    assert "\n" not in str(exc.value)


def test_loading_a_folder_without_a_run_says_what_is_missing(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.yaml"):
        NeuralDiffuserPipeline.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="no such folder"):
        NeuralDiffuserPipeline.from_pretrained(tmp_path / "nope")


def test_top_level_import_is_light_and_every_name_resolves():
    code = (
        "import sys, neuraldiffuser as nd; print(sorted(m for m in "
        "('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
    import neuraldiffuser
    import neuraldiffuser.simulate  # noqa: F401  (a subpackage import must not shadow a top-level name)

    for name in neuraldiffuser.__all__:
        assert getattr(neuraldiffuser, name) is not None
        assert not isinstance(getattr(neuraldiffuser, name), type(neuraldiffuser)), name
    with pytest.raises(AttributeError):
        neuraldiffuser.no_such_name  # noqa: B018


def test_reconstruct_on_a_runs_file_uses_that_runs_settings_and_says_so(trained, tmp_path, capsys):
    from neuraldiffuser.cli.main import main
    from neuraldiffuser.config.load import load_run_config
    from neuraldiffuser.sampling.runner import run_config_for
    from neuraldiffuser.training.decode import decode_betas

    run, test, _, _ = trained
    decoded = decode_betas(
        load_run_config(run), run, test[:2], np.arange(2), tmp_path / "elsewhere" / "decoded.hdf5"
    )
    assert run_config_for(decoded) == run / "config.yaml"  # through the store's source_run
    assert run_config_for(run) == run / "config.yaml" and run_config_for(tmp_path) is None
    out = tmp_path / "recon"
    assert (
        main(
            [
                "reconstruct",
                str(decoded),
                "--out",
                str(out),
                "--set",
                "sampler.steps=3",
                "--set",
                "sampler.repeats=1",
            ]
        )
        == 0
    )
    assert f"settings: {run / 'config.yaml'} (the run that made {decoded})" in capsys.readouterr().err
    saved = load_run_config(
        out / "neuraldiffuser" / "kappa=50_eta=0.5"
    )  # the run's κ, η (not the class defaults)
    assert (
        saved.sampler.kappa == 50.0
        and saved.sampler.steps == 3
        and saved.zoo.path == load_run_config(run).zoo.path
    )


def test_config_defaults_are_coherent_and_a_zoo_carries_its_sampler_settings(tmp_path, tiny_stack):
    from neuraldiffuser import Config, load_config

    mini = Config()
    assert mini.zoo.path == "builtin:insilico-64" and (
        mini.sampler.kappa,
        mini.sampler.eta,
        mini.sampler.strength,
    ) == (300.0, 0.4, 0.6)
    paper = load_config("paper")
    assert (paper.sampler.kappa, paper.sampler.eta, paper.sampler.strength) == (3e5, 0.2, 0.75)
    assert (
        load_config(overrides={"zoo": {"path": "CompVis/stable-diffusion-v1-4"}}).sampler.kappa == 3e5
    )  # hub id: the paper's
    assert (
        load_config(overrides={"sampler": {"kappa": 30}}).sampler.eta == 0.4
    )  # what the user sets wins, the rest is the zoo's
    zoo = shutil.copytree(tiny_stack, tmp_path / "zoo")
    (zoo / "sampler_defaults.json").write_text(json.dumps({"sampler": {"kappa": 7.0, "repeats": 1}}))
    own = load_config(overrides={"zoo": {"path": str(zoo)}})
    assert own.sampler.kappa == 7.0 and own.sampler.repeats == 1 and own.sampler.eta == 0.2
    (zoo / "sampler_defaults.json").write_text(json.dumps({"sampler": {"kapa": 7.0}}))
    with pytest.raises(ConfigError, match=r"unknown sampler key\(s\) \['kapa'\]"):
        load_config(overrides={"zoo": {"path": str(zoo)}})


def test_decoding_one_row_with_z_matching_warns(pipe, trained):
    with pytest.warns(UserWarning, match="z becomes the training mean"):
        one = pipe.decode(trained[1][:1])
    np.testing.assert_allclose(one["z"][0], pipe.z_stats["mean"], atol=1e-5)  # what the warning says


def test_generate_checks_target_shapes_against_the_stack_as_the_reconstruct_stage_does(pipe):
    """generate builds the reconstruct stage's reconstructor, so a z of another stack's latent shape is
    refused in one line naming the shapes (not a broadcasting error inside the UNet)."""
    bad = {"c": np.zeros((2, 77, 16)), "z": np.zeros((2, 4, 4, 4))}
    with pytest.raises(
        DataError, match=r"'z' targets have shape \(4, 4, 4\) but the stack .* expects \(4, 8, 8\)"
    ):
        pipe.generate(bad, kappa=0)
    ok = pipe.generate({"c": bad["c"], "z": np.zeros((2, 4, 8, 8))}, kappa=0, repeats=1, steps=2)
    assert ok.shape == (2, 1, 16, 16, 3)


def test_the_decode_stage_and_the_pipeline_load_a_run_through_one_function(trained, monkeypatch, tmp_path):
    """training.decode.load_trained is the one loader: the decode stage calls it (without the neural
    decoders for the ridge baseline) and so does from_pretrained."""
    from neuraldiffuser.config.load import load_run_config
    from neuraldiffuser.training import decode

    run, test, _, _ = trained
    calls = []
    real = decode.load_trained

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append((kwargs.get("neural", True), sorted(out.decoders), out.ridge is not None))
        return out

    monkeypatch.setattr(decode, "load_trained", spy)
    NeuralDiffuserPipeline.from_pretrained(run, device="cpu")
    decode.decode_betas(
        load_run_config(run), run, test[:2], np.arange(2), tmp_path / "r.hdf5", method="ridge"
    )
    assert calls[0][0] and calls[0][1] and calls[0][2]  # the pipeline: decoders and the ridge baseline
    assert calls[1] == (False, [], True)  # the ridge stage: no neural decoder loaded
