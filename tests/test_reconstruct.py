"""The reconstruct stage: folder contract, resume, sweeps, oracle targets, sharding, errors, command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuraldiffuser.cli.main import main
from neuraldiffuser.config import load_config
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.errors import ConfigError, DataError
from neuraldiffuser.sampling import runner
from neuraldiffuser.sampling.runner import Shard, make_job, reconstruct, to_uint8
from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
from neuraldiffuser.targets.store import write_store
from neuraldiffuser.zoo.loader import Components

SAMPLER = {"steps": 8, "repeats": 2, "kappa": 100.0, "eta": 0.5}


pytestmark = pytest.mark.usefixtures(
    "single_thread"
)  # tiny models: a second thread only adds synchronisation


def random_targets(images, seed=0, keys=("c", "z", "g"), z_shape=(4, 8, 8)):
    rng = np.random.default_rng(seed)
    shapes = {"c": (77, 16), "z": z_shape, "g": (6, 17, 16)}
    return {k: rng.standard_normal((len(images), *shapes[k])).astype(np.float32) for k in keys}


@pytest.fixture
def setup(tmp_path, tiny_stack, generic_dir):
    decoded = write_store(
        tmp_path / "decode" / "decoded.hdf5",
        np.array([9, 7, 8]),
        random_targets([9, 7, 8]),
        attrs={"subject": "subj01"},
    )
    oracle = write_store(tmp_path / "targets.hdf5", np.arange(10), random_targets(range(10), seed=1))
    config = load_config(
        overrides={"zoo": {"path": str(tiny_stack)}, "data": {"path": str(generic_dir)}, "sampler": SAMPLER}
    )
    return decoded, oracle, config


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_folder_follows_the_contract(setup, tmp_path):
    decoded, _, config = setup
    job = make_job(decoded, config)
    (folder,) = reconstruct(job, tmp_path / "recon", config, shard=Shard())
    assert folder == tmp_path / "recon" / "neuraldiffuser" / "kappa=100_eta=0.5"
    m = json.loads((folder / "manifest.json").read_text())
    assert m["images"] == [9, 7, 8] and m["repeats"] == 2 and m["complete"] and m["subject"] == "subj01"
    assert m["method"] == "neuraldiffuser" and m["setting"] == folder.name and m["config"] == "config.yaml"
    assert m["params"] == {"kappa": 100.0, "eta": 0.5, "targets": "decoded"} and m["seconds_per_image"] > 0
    assert (
        m["files"]["7"] == ["images/00007_r0.png", "images/00007_r1.png"]
        and m["strips"]["7"] == "strips/00007.png"
    )
    assert load_config(files=[folder / "config.yaml"]).sampler.kappa == 100.0
    # the PNGs hold exactly what the sampler makes for that image (seed + image index)
    comp = Components(ZooConfig(path=config.zoo.path))
    t = {k: torch.from_numpy(v[1]) for k, v in random_targets([9, 7, 8]).items()}
    expected = to_uint8(NeuralDiffuserSampler(comp, config.sampler)(t["c"], t["z"], t["g"], seed=42 + 7))
    for r in range(2):
        assert np.array_equal(np.asarray(Image.open(folder / m["files"]["7"][r])), expected[r])
    strip = np.asarray(Image.open(folder / "strips/00007.png"))
    assert strip.shape == (16, 48, 3) and np.array_equal(strip[:, 16:32], expected[0])
    # the first panel is image 7 itself (resized), not a row of it
    stimulus = Image.fromarray(job.dataset.images.get([7])[0]).resize((16, 16), Image.LANCZOS)
    assert np.array_equal(strip[:, :16], np.asarray(stimulus))


def test_interrupted_run_resumes_to_identical_files(setup, tmp_path, monkeypatch):
    decoded, _, config = setup
    job = make_job(decoded, config)
    (full,) = reconstruct(job, tmp_path / "full", config, shard=Shard())
    real, calls, fail_at = runner.reconstruct_images, [], [2]

    def flaky(reconstructor, job, keys, images, folder, device):
        calls.extend(images)
        if len(calls) in fail_at:
            raise KeyboardInterrupt
        real(reconstructor, job, keys, images, folder, device)

    monkeypatch.setattr(runner, "reconstruct_images", flaky)
    with pytest.raises(KeyboardInterrupt):
        reconstruct(job, tmp_path / "part", config, shard=Shard())
    part = tmp_path / "part" / full.relative_to(tmp_path / "full")
    assert not json.loads((part / "manifest.json").read_text())["complete"]
    calls.clear()
    fail_at.clear()
    reconstruct(job, tmp_path / "part", config, shard=Shard())
    assert calls == [7, 8]  # image 9 was finished and is skipped
    assert files_of(part) == files_of(full) and len(files_of(full)) == 9
    strip_timing = lambda m: {k: v for k, v in m.items() if k not in ("seconds_per_image", "targets")}  # noqa: E731
    assert strip_timing(json.loads((part / "manifest.json").read_text())) == strip_timing(
        json.loads((full / "manifest.json").read_text())
    )


def test_images_sampled_together_match_one_at_a_time(setup, tmp_path):
    """sampler.image_batch > 1: same files, records and images (up to float rounding) as
    one image per call."""
    decoded, _, config = setup
    job = make_job(decoded, config)
    (single,) = reconstruct(job, tmp_path / "one", config, shard=Shard())
    batched_config = config.model_copy(deep=True)
    batched_config.sampler.image_batch = 2
    (batched,) = reconstruct(
        make_job(decoded, batched_config), tmp_path / "two", batched_config, shard=Shard()
    )
    assert files_of(batched).keys() == files_of(single).keys() and len(files_of(single)) == 9
    manifest = json.loads((batched / "manifest.json").read_text())
    assert (
        manifest["complete"]
        and manifest["images"] == json.loads((single / "manifest.json").read_text())["images"]
    )
    for name in (n for n in files_of(single) if n.startswith("images/")):
        a = np.asarray(Image.open(single / name), dtype=int)
        b = np.asarray(Image.open(batched / name), dtype=int)
        assert np.abs(a - b).max() <= 1, name  # uint8 rounding of float-level differences


def test_sweep_writes_one_folder_per_setting(setup, tmp_path):
    decoded, _, config = setup
    job = make_job(decoded, config, limit=1)
    folders = reconstruct(
        job, tmp_path / "recon", config, sweep={"kappa": [0, 100], "eta": [0.25, 0.5]}, shard=Shard()
    )
    assert [f.name for f in folders] == ["kappa=0_eta=0", "kappa=100_eta=0.25", "kappa=100_eta=0.5"]
    for f in folders:
        m = json.loads((f / "manifest.json").read_text())
        cfg = load_config(files=[f / "config.yaml"])
        assert (cfg.sampler.kappa, cfg.sampler.eta) == (m["params"]["kappa"], m["params"]["eta"]) and m[
            "images"
        ] == [9]
    a, b = (np.asarray(Image.open(f / "images/00009_r0.png")).astype(int) for f in folders[1:])
    assert np.abs(a - b).max() > 0  # η changes the result


def test_unguided_needs_no_g_and_oracle_is_kept_apart(setup, tmp_path, generic_dir):
    _, oracle, config = setup
    no_g = write_store(tmp_path / "nog.hdf5", np.array([8]), random_targets([8], keys=("c", "z")))
    (folder,) = reconstruct(
        make_job(no_g, config), tmp_path / "recon", config, sweep={"kappa": [0]}, shard=Shard()
    )
    assert folder.name == "kappa=0_eta=0"
    with pytest.raises(DataError, match="hold no 'g'"):
        reconstruct(make_job(no_g, config), tmp_path / "recon", config, shard=Shard())
    # --oracle without decoded targets: the subject's test images, from the true targets
    (folder,) = reconstruct(make_job(None, config, oracle=oracle), tmp_path / "recon", config, shard=Shard())
    m = json.loads((folder / "manifest.json").read_text())
    assert folder.name == "kappa=100_eta=0.5_oracle" and m["params"]["targets"] == "oracle"
    assert sorted(m["images"]) == [7, 8, 9]


def test_shards_together_equal_one_process(setup, tmp_path):
    decoded, _, config = setup
    job = make_job(decoded, config)
    (one,) = reconstruct(job, tmp_path / "one", config, shard=Shard())
    for index in (1, 0):  # the main process (0) finishes last and writes the manifest
        (two,) = reconstruct(job, tmp_path / "two", config, shard=Shard(index, 2))
    assert files_of(two) == files_of(one)
    assert json.loads((two / "manifest.json").read_text())["images"] == [9, 7, 8]


def test_errors_name_what_is_wrong(setup, tmp_path):
    decoded, _, config = setup
    bad = write_store(tmp_path / "bad.hdf5", np.array([7]), random_targets([7], z_shape=(4, 16, 16)))
    with pytest.raises(DataError, match=r"'z' targets have shape \(4, 16, 16\)"):
        reconstruct(make_job(bad, config), tmp_path / "recon", config, shard=Shard())
    job = make_job(decoded, config, limit=1)
    reconstruct(job, tmp_path / "recon", config, shard=Shard())
    other = config.model_copy(deep=True)
    other.sampler.steps = 9
    with pytest.raises(ConfigError, match="different sampler"):
        reconstruct(job, tmp_path / "recon", other, shard=Shard())
    reconstruct(job, tmp_path / "recon", other, shard=Shard(), overwrite=True)
    with pytest.raises(ConfigError, match="unknown method"):
        reconstruct(job, tmp_path / "recon", config, method="nope", shard=Shard())
    with pytest.raises(DataError, match="not among"):
        make_job(decoded, config, images=[1])


def test_command_line_from_a_decode_run_folder(setup, tmp_path, tiny_stack, generic_dir):
    decoded, _, config = setup
    from neuraldiffuser.config import save_config

    save_config(config, decoded.parent)  # a decode run folder: decoded.hdf5 + config.yaml
    out = tmp_path / "recon"
    args = [
        "reconstruct",
        str(decoded.parent),
        "--out",
        str(out),
        "--images",
        "8",
        "--repeats",
        "1",
        "--kappa",
        "0",
        "--kappa",
        "50",
        "--eta",
        "0.5",
    ]
    assert main(args) == 0
    for name in ("kappa=0_eta=0", "kappa=50_eta=0.5"):
        m = json.loads((out / "neuraldiffuser" / name / "manifest.json").read_text())
        assert m["images"] == [8] and m["repeats"] == 1 and m["dataset"] == str(Path(generic_dir).resolve())
    assert main(["reconstruct", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_worker_processes_write_what_one_process_writes(setup, tmp_path):
    from neuraldiffuser.sampling.processes import reconstruct_in_processes

    decoded, _, config = setup
    sweep = {"kappa": [100.0, 0.0]}
    single = reconstruct(make_job(decoded, config), tmp_path / "one", config, sweep=sweep, shard=Shard())
    folders = reconstruct_in_processes(decoded, tmp_path / "two", config, 2, sweep=sweep)
    assert [f.relative_to(tmp_path / "two") for f in folders] == [
        f.relative_to(tmp_path / "one") for f in single
    ]
    for one, two in zip(single, folders, strict=True):
        assert files_of(two) == files_of(one) and len(files_of(one)) == 9  # 3 images × (2 repeats + strip)
        assert json.loads((two / "manifest.json").read_text())["complete"]
    with pytest.raises(ConfigError, match="workers must be"):
        reconstruct_in_processes(decoded, tmp_path / "none", config, 0)


def test_ridge_file_reads_the_runs_config(setup, tmp_path, generic_dir, capsys):
    """`reconstruct RUN/decoded_ridge.hdf5 --method ridge` takes dataset, steps and repeats from
    the run (issue 17)."""
    from neuraldiffuser.config import save_config

    decoded, _, config = setup
    ridge = write_store(
        decoded.with_name("decoded_ridge.hdf5"),
        np.array([9, 7, 8]),
        random_targets([9, 7, 8], seed=2),
        attrs={"subject": "subj01"},
    )
    config.sampler.repeats = 1
    save_config(
        config, ridge.parent, name="decoded.config.yaml"
    )  # what `decode --ridge` leaves beside both files
    out = tmp_path / "recon"
    assert main(["reconstruct", str(ridge), "--method", "ridge", "--out", str(out), "--images", "8"]) == 0
    assert "settings from the run's config" in capsys.readouterr().err
    (folder,) = (out / "ridge").iterdir()
    m = json.loads((folder / "manifest.json").read_text())
    assert m["repeats"] == 1 and m["dataset"] == str(Path(generic_dir).resolve())
    assert load_config(files=[folder / "config.yaml"]).sampler.steps == SAMPLER["steps"]
