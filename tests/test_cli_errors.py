"""Bad input at the command line: usage text and exit 2, Ctrl-C exits 130, config ranges, output paths, zoo
paths, one writer per folder, absolute paths in saved configs, reports of deleted folders. Each
error is one line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuraldiffuser.cli.main import main
from neuraldiffuser.config import load_config
from neuraldiffuser.errors import ConfigError, ModelLoadError, OutputError
from neuraldiffuser.utils.outputs import check_output, exclusive_output
from test_eval_helpers import FakeEncoder, degrade, photo_stimuli, register_encoder, write_recon, write_truth

REPO = Path(__file__).resolve().parents[1]


def one_clean_error(capsys, code: int, argv: list[str], *needles: str) -> str:
    """Run main(argv), expect ``code``, no traceback, and every needle in stderr; returns stderr."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# ------------------------------------------------------------------ usage errors (typer's bundled click)

USAGE = [
    (["simulate"], "Missing option '--out'"),
    (["simulate", "-o", "x", "--bogus"], "No such option: --bogus"),
    (["nosuch"], "No such command 'nosuch'"),
    (["reconstruct", "d.hdf5", "-o", "r", "--kappa", "abc"], "Invalid value for '--kappa'"),
    (["reconstruct", "d.hdf5", "-o", "r", "--repeats", "two"], "Invalid value for '--repeats'"),
    (["reconstruct", "d.hdf5", "-o", "r", "--limit", "-3"], "Invalid value for '--limit'"),
    (["simulate", "-o", "x", "--preset", "scenes", "--n-images", "-5"], "Invalid value for '--n-images'"),
    (["zoo", "train", "--images", "x"], "Missing option '--out'"),
    (["train", "ds"], "Missing argument"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_print_usage_and_exit_2(capsys, argv, message):
    err = one_clean_error(capsys, 2, argv, "Usage: neuraldiffuser", message)
    assert "--help' for help" in err


def test_no_output_is_made_for_a_usage_error(capsys, tmp_path):
    one_clean_error(capsys, 2, ["simulate", "-o", str(tmp_path / "out"), "--n-images", "-5"])
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ Ctrl-C


def test_keyboard_interrupt_in_a_stage_exits_130_with_a_message(capsys, monkeypatch, generic_dir):
    import neuraldiffuser.data.inspect as inspect_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_mod, "summarize", interrupted)
    err = one_clean_error(capsys, 130, ["inspect", str(generic_dir)], "interrupted")
    assert len(err.strip().splitlines()) == 1


def test_a_failed_folder_copy_is_one_line_naming_the_file_and_reason(capsys, monkeypatch, generic_dir):
    # shutil.copytree gathers its failures into shutil.Error (errno None): found when a paper-scale run
    # filled the disk while writing RUN/decoders/ and the CLI printed a traceback
    import neuraldiffuser.data.inspect as inspect_mod

    def disk_full(*args, **kwargs):
        raise shutil.Error(
            [
                (
                    "/run/finetune/c/model/w.safetensors",
                    "/run/.decoders.x/c/w.safetensors",
                    "[Errno 28] No space left on device",
                )
            ]
        )

    monkeypatch.setattr(inspect_mod, "summarize", disk_full)
    err = one_clean_error(capsys, 1, ["inspect", str(generic_dir)], "No space left on device")
    assert len(err.strip().splitlines()) == 1 and "/run/finetune/c/model/w.safetensors" in err


def test_interrupted_train_says_to_resume(capsys, monkeypatch, generic_dir, tmp_path):
    import neuraldiffuser.training.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "train_decoders", interrupted)
    one_clean_error(
        capsys,
        130,
        ["train", str(generic_dir), str(tmp_path / "t.hdf5"), "-o", str(tmp_path / "run")],
        "add --resume",
    )


def test_sigint_to_a_running_command_exits_130(tmp_path):
    """A real Ctrl-C (SIGINT) while `simulate` writes its dataset: exit 130 and one line, never 0."""
    out = tmp_path / "sim"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "NEURALDIFFUSER_PROGRESS": "0",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "neuraldiffuser.cli.main", "simulate", "--preset", "mini", "-o", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not out.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # the folder appears once imports are done and the work has started
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


# ------------------------------------------------------------------ messages keep their brackets


def test_error_text_is_not_eaten_as_rich_markup(capsys, monkeypatch, generic_dir):
    import neuraldiffuser.data.inspect as inspect_mod

    def refuse(*args, **kwargs):
        raise ConfigError(
            "one subject cannot be pretrained on", fix="set train.stages: [finetune] or [bold]x[/bold]"
        )

    monkeypatch.setattr(inspect_mod, "summarize", refuse)
    one_clean_error(
        capsys, 2, ["inspect", str(generic_dir)], "set train.stages: [finetune] or [bold]x[/bold]"
    )


# ------------------------------------------------------------------ config value ranges

BAD_VALUES = [
    ("train.finetune_epochs", -1),
    ("train.pretrain_epochs", 0),
    ("train.batch_size", 0),
    ("train.lr", 0),
    ("train.checkpoint_every", 0),
    ("train.ridge_alphas", [1.0, -2.0]),
    ("extract.batch_size", -4),
    ("extract.batch_size", 0),
    ("sampler.strength", 1.5),
    ("sampler.eta", -0.1),
    ("sampler.kappa", -1),
    ("sampler.repeats", 0),
    ("sampler.steps", 0),
    ("decoder.dropout", 1.0),
    ("decoder.hidden", 0),
    ("decode.batch_size", 0),
    ("data.test_repeats", 0),
    ("simulate.n_images", -5),
    ("simulate.subjects", 0),
    ("simulate.seed", -1),
    ("simulate.noise_scale", -0.5),
    ("seed", -3),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_out_of_range_values_are_refused_naming_the_key(key, value):
    node: dict = {}
    parts = key.split(".")
    cur = node
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    with pytest.raises(ConfigError, match=f"key '{key}"):
        load_config(overrides=node)


def test_range_error_through_the_cli_is_one_line(capsys, generic_dir, tmp_path):
    err = one_clean_error(
        capsys,
        2,
        ["extract", str(generic_dir), "-o", str(tmp_path / "t.hdf5"), "--set", "extract.batch_size=-4"],
        "extract.batch_size",
        "greater than or equal to 1",
    )
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.hdf5").exists()


def test_presets_satisfy_the_ranges():
    for preset in ("mini", "paper", None):
        load_config(preset=preset)


# ------------------------------------------------------------------ output paths


def unwritable_dir(tmp_path: Path) -> Path:
    """A folder no file can be created in: read-only by mode, or (root ignores modes) a
    read-only kernel folder."""
    if os.geteuid() == 0:
        return Path("/sys")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro


def test_check_output_refuses_files_folders_and_unwritable_places(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="folder is an existing file"):
        check_output(a_file, folder=True)
    with pytest.raises(OutputError, match="file is an existing folder"):
        check_output(tmp_path, folder=False)
    with pytest.raises(OutputError, match="a_file is a file"):
        check_output(a_file / "sub" / "x.hdf5", folder=False)
    with pytest.raises(OutputError, match="cannot write"):
        check_output(unwritable_dir(tmp_path) / "out", folder=True)
    assert check_output(tmp_path / "new" / "deeper", folder=True) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a_file", *(["ro"] if os.geteuid() else [])])


def output_cases(tmp_path: Path, ds: Path) -> list[list[str]]:
    f = tmp_path / "a_file"
    f.write_text("x")
    return [
        ["simulate", "-o", str(f)],
        ["extract", str(ds), "-o", str(tmp_path)],  # a folder where the store belongs
        ["train", str(ds), str(tmp_path / "t.hdf5"), "-o", str(f)],
        ["reconstruct", "-o", str(f)],
        ["evaluate", str(tmp_path / "recon"), "--truth", str(ds), "-o", str(f)],
        ["zoo", "train", "--images", str(ds), "-o", str(f)],
        ["demo", "-o", str(f)],
        ["simulate", "-o", str(f / "sub")],
    ]


def test_every_command_refuses_an_output_that_is_a_file(capsys, tmp_path, generic_dir):
    for argv in output_cases(tmp_path, generic_dir):
        err = one_clean_error(capsys, 2, argv, "error:")
        assert str(tmp_path) in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert (tmp_path / "a_file").read_text() == "x"


def test_unwritable_output_is_one_line(capsys, tmp_path):
    one_clean_error(
        capsys,
        2,
        ["simulate", "-o", str(unwritable_dir(tmp_path) / "sim")],
        "cannot write the dataset folder",
    )


# ------------------------------------------------------------------ zoo paths never reach the network


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))

    def refuse(*args, **kwargs):
        raise AssertionError("a zoo path reached the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("myorg/mystack", "not in the local Hugging Face cache"),
        ("./no_such_stack", "does not exist"),
        ("/no/such/stack", "does not exist"),
        ("a/b/c", "does not exist"),
    ],
)
def test_missing_zoo_folder_fails_at_once_without_network(no_network, spec, message):
    from neuraldiffuser.config.sections.zoo import ZooConfig
    from neuraldiffuser.zoo.loader import Components

    with pytest.raises(
        ModelLoadError, match=message
    ) as info:  # the socket guard fails the test on any connection
        Components(ZooConfig(path=spec)).vae  # noqa: B018
    assert "zoo.path" in str(info.value)


def test_cached_hub_id_is_read_from_the_cache_only(no_network, tmp_path):
    from neuraldiffuser.zoo.loader import check_findable, in_hf_cache

    cached = tmp_path / "empty_hf_home" / "hub" / "models--myorg--cached"
    cached.mkdir(parents=True)
    assert in_hf_cache("myorg/cached")
    check_findable("myorg/cached")  # no error: from_pretrained then reads it with local_files_only
    with pytest.raises(ModelLoadError):
        check_findable("myorg/absent")
    check_findable("myorg/absent", download=True)  # allowed to go to the hub only when asked


# ------------------------------------------------------------------ one writer per folder


def test_second_writer_of_a_folder_is_refused(tmp_path):
    with exclusive_output(tmp_path / "recon", folder=True):
        with pytest.raises(OutputError, match="another process is writing"):
            with exclusive_output(tmp_path / "recon", folder=True):
                pass
    with exclusive_output(tmp_path / "recon", folder=True):  # released: the next run proceeds
        pass


def test_reconstruct_into_a_locked_folder_is_refused(capsys, tmp_path):
    with exclusive_output(tmp_path / "recon", folder=True):
        one_clean_error(
            capsys, 2, ["reconstruct", "-o", str(tmp_path / "recon")], "another process is writing"
        )


def test_second_reconstruct_process_is_refused(tmp_path):
    """A real second process: the lock is held by this one, the CLI in a subprocess must refuse."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with exclusive_output(tmp_path / "recon", folder=True):
        res = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from neuraldiffuser.utils.outputs import exclusive_output as e\n"
                f"with e({str(tmp_path / 'recon')!r}, folder=True): pass",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode != 0 and "another process is writing" in res.stderr


# ------------------------------------------------------------------ absolute paths in saved configs


def test_config_paths_are_made_absolute(tmp_path, monkeypatch):
    from neuraldiffuser.cli.common import resolve

    monkeypatch.chdir(tmp_path)
    (tmp_path / "stack").mkdir()
    cfg = resolve(
        None,
        [],
        [
            "data.path=ds",
            "zoo.path=stack",
            "evaluate.cache_dir=cache",
            "zoo.guidance_encoder=openai/clip-vit-base-patch32",
        ],
    )
    assert cfg.data.path == str(tmp_path / "ds")
    assert cfg.zoo.path == str(tmp_path / "stack")
    assert cfg.evaluate.cache_dir == str(tmp_path / "cache")
    assert cfg.zoo.guidance_encoder == "openai/clip-vit-base-patch32"  # a hub id stays one
    assert resolve(None, [], []).zoo.path == "builtin:insilico-64"


# ------------------------------------------------------------------ report of deleted folders


@pytest.fixture
def evaluated(tmp_path, monkeypatch):
    from neuraldiffuser.evaluation.runner import run_evaluation

    stimuli = photo_stimuli(6, size=32)
    encoder = FakeEncoder(n_voxels=12)
    truth = write_truth(tmp_path / "truth", stimuli, encoder, n_test=3)
    recon = tmp_path / "run" / "recon"
    write_recon(
        recon, "neuraldiffuser", "default", [0, 1, 2], np.stack([degrade(stimuli[:3], 0.5, 0)]), stimuli
    )
    config = load_config(
        overrides={
            "evaluate": {
                "metrics": ["PixCorr"],
                "brain_encoder": register_encoder(monkeypatch, encoder),
                "torch_home": str(tmp_path / "torch"),
            }
        }
    )
    run_evaluation([recon], truth, config, tmp_path / "run")
    return tmp_path / "run"


def test_report_of_deleted_folders_is_refused_and_writes_nothing(capsys, evaluated, tmp_path):
    assert main(["report", str(evaluated), "-o", str(tmp_path / "ok.html")]) == 0
    capsys.readouterr()
    shutil.rmtree(evaluated / "recon")
    one_clean_error(
        capsys, 2, ["report", str(evaluated), "-o", str(tmp_path / "r.html")], "reconstruction folders"
    )
    assert not (tmp_path / "r.html").exists()
    one_clean_error(capsys, 2, ["report", str(tmp_path / "gone")], "run folder not found")
    assert not (tmp_path / "gone").exists()


def test_evaluate_refuses_an_unknown_subject_and_scores_one_image(capsys, tmp_path, monkeypatch):
    from neuraldiffuser.evaluation.runner import run_evaluation

    stimuli = photo_stimuli(4, size=32)
    encoder = FakeEncoder(n_voxels=12)
    truth = write_truth(tmp_path / "truth", stimuli, encoder, n_test=2)
    recon = tmp_path / "recon"
    write_recon(recon, "neuraldiffuser", "one", [0], np.stack([degrade(stimuli[:1], 0.5, 0)]), stimuli)
    one_clean_error(
        capsys,
        2,
        ["evaluate", str(recon), "--truth", str(truth), "--subject", "subj99", "-o", str(tmp_path / "e")],
        "no subject 'subj99'",
    )
    config = load_config(
        overrides={"evaluate": {"metrics": ["PixCorr", "mini-CLIP 2-way"], "brain_encoder": "none"}}
    )
    doc = run_evaluation(
        [recon], truth, config, tmp_path / "e2"
    )  # one image: scored, and two-way named as needing 2
    assert doc["rows"][0]["values"]["mini-CLIP 2-way"] == {
        "unavailable": "two-way identification needs at least 2 images; the folder has 1"
    }
    assert isinstance(doc["rows"][0]["values"]["PixCorr"], float)


@pytest.mark.parametrize(("device", "message"), [("cuda:99", "cuda:99"), ("gpu0", "is not a device")])
def test_a_device_that_is_not_there_is_one_line(capsys, tmp_path, device, message):
    err = one_clean_error(capsys, 2, ["reconstruct", "-o", str(tmp_path / "r"), "--device", device], message)
    assert len(err.strip().splitlines()) == 1
    one_clean_error(
        capsys,
        2,
        ["extract", str(tmp_path), "-o", str(tmp_path / "t.hdf5"), "--set", f"extract.device={device}"],
        message,
    )


@pytest.mark.parametrize(
    "override",
    [
        {"unet": {"steps": -1}},
        {"clip": {"batch_size": 0}},
        {"autoencoder": {"lr": -1e-3}},
        {"checkpoint_every": 0},
    ],
)
def test_zoo_train_settings_ranges(override):
    from neuraldiffuser.zoo.train.settings import load_settings

    with pytest.raises(ConfigError, match="must be|greater than"):
        load_settings(None, override)


def test_a_train_that_failed_before_training_can_be_rerun_without_resume(capsys, tmp_path, generic_dir):
    """A wrong targets path leaves only the saved config and the lock: the corrected command starts afresh."""
    run = tmp_path / "run"
    argv = ["train", str(generic_dir), str(tmp_path / "no_targets.hdf5"), "--out", str(run)]
    for _ in range(2):  # the second time the same error again, not "run folder is not empty"
        one_clean_error(capsys, 2, argv, "no_targets.hdf5")
    (run / "decoders").mkdir()  # something trained: a rerun without --resume is refused
    one_clean_error(capsys, 2, argv, "run folder is not empty")
