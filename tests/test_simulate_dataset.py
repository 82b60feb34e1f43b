"""Simulated datasets carry the information they claim, reproducibly, in both layouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from neuraldiffuser.config.sections.simulate import SimulateConfig
from neuraldiffuser.data import open_dataset
from neuraldiffuser.errors import ConfigError
from neuraldiffuser.simulate.design import noise_ceiling
from neuraldiffuser.simulate.encoding import EncodingModel
from neuraldiffuser.simulate.presets import HIGHER, NOISE_CEILING
from neuraldiffuser.simulate.run import simulate_dataset
from neuraldiffuser.simulate.semantic import ATTRIBUTES, GROUPS, attribute_vectors

TINY = dict(preset="small", n_images=40, test_images=8, voxels=[60, 90], subjects=2, sessions=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The `small` preset (2 subjects, 40 shared test images x3, 360 training images each), both layouts."""
    root = tmp_path_factory.mktemp("sim") / "small"
    simulate_dataset(root, SimulateConfig(preset="small", seed=0, layout="both"))
    return root


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, monkeypatch):
    import neuraldiffuser.simulate.run as run

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate_dataset(a, SimulateConfig(seed=3, layout="both", **TINY))
    original = run._subject

    def interrupted(index, *args):
        if index == 1:
            raise KeyboardInterrupt
        return original(index, *args)

    monkeypatch.setattr(run, "_subject", interrupted)
    with pytest.raises(KeyboardInterrupt):  # stopped after subj01: resumable, not yet a dataset
        simulate_dataset(b, SimulateConfig(seed=3, layout="both", **TINY))
    assert not (b / "dataset.json").exists() and json.loads((b / "simulator" / "progress.json").read_text())[
        "done"
    ] == ["subj01"]
    monkeypatch.setattr(run, "_subject", original)
    assert "subj02" in simulate_dataset(
        b, SimulateConfig(seed=3, layout="both", **TINY)
    )  # resumes with subj02 only
    simulate_dataset(c, SimulateConfig(seed=4, layout="both", **TINY))
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db and len(da) > 20
    assert da["subjects/subj01/betas.hdf5"] != dc["subjects/subj01/betas.hdf5"]
    assert da["images.hdf5"] != dc["images.hdf5"]
    assert "nothing to do" in simulate_dataset(a, SimulateConfig(seed=3, layout="both", **TINY))
    with pytest.raises(ConfigError, match="different simulated dataset"):
        simulate_dataset(a, SimulateConfig(seed=5, layout="both", **TINY))


def test_cli_writes_the_dataset_and_its_config(tmp_path, capsys):
    from neuraldiffuser.cli.main import main

    out = tmp_path / "cli"
    argv = [
        "simulate",
        "--preset",
        "small",
        "--out",
        str(out),
        "--subjects",
        "1",
        "--n-images",
        "20",
        "--seed",
        "9",
        "--set",
        "simulate.test_images=4",
        "--set",
        "simulate.voxels=[40,50]",
    ]
    assert main(argv) == 0
    assert "simulated small: 1 subjects" in capsys.readouterr().out
    ds = open_dataset(out)
    assert list(ds.subjects) == ["subj01"] and len(ds.images) == 24
    assert "seed: 9" in (out / "simulator" / "config.yaml").read_text()
    assert (
        main([("10" if a == "9" else a) for a in argv]) == 2
    )  # another seed into the same folder: refused, one-line error
    assert "different simulated dataset" in capsys.readouterr().err


def test_noiseless_betas_are_exactly_the_encoding_models_predictions(tmp_path):
    root = simulate_dataset_path(tmp_path / "clean", noise_scale=0.0)
    ds = open_dataset(root)
    for name, subject in ds.subjects.items():
        model = EncodingModel.load(root, name)
        pred = model.predict(ds.images.get(subject.trials.image))
        assert pred.shape == (subject.n_trials, subject.n_voxels) and pred.dtype == np.float32
        np.testing.assert_allclose(subject.read(subject.trials.row), pred, atol=2e-4)
        assert np.array_equal(model.roi, subject.roi)


def simulate_dataset_path(root: Path, **changes) -> Path:
    simulate_dataset(root, SimulateConfig(**{**TINY, **changes}))
    return root


def test_design_is_nsd_like(small):
    ds = open_dataset(small)
    meta = json.loads((small / "simulator" / "simulator.json").read_text())
    shared = set(meta["test_images"])
    counts = set()
    for s in ds.subjects.values():
        t = s.trials
        assert set(np.unique(t.image[t.split == "test"])) == shared
        test_counts = np.unique(t.image[t.split == "test"], return_counts=True)[1]
        assert np.all(test_counts == 3)
        train_counts = np.unique(t.image[t.split == "train"], return_counts=True)[1]
        assert train_counts.min() >= 1 and train_counts.max() == 3 and len(train_counts) == 360
        assert not shared & set(t.image[t.split == "train"].tolist())
        assert list(s.sessions) == [1, 2, 3, 4]
        assert set(s.roi) == {"V1", "V2", "V3", "hV4", "LO", "VO", "PPA", "IPS"}
        counts.add(s.n_voxels)
        assert 400 <= s.n_voxels <= 600
    train_sets = [set(s.trials.image[s.trials.split == "train"].tolist()) for s in ds.subjects.values()]
    assert not train_sets[0] & train_sets[1]  # each subject sees its own training images
    assert len(counts) == 2  # voxel counts differ between subjects


def test_mindeye2_layout_reads_back_with_the_same_trials(small):
    generic, me2 = open_dataset(small), open_dataset(small / "mindeye2")
    assert me2.layout == "mindeye2" and list(me2.subjects) == list(generic.subjects)
    assert np.array_equal(
        me2.images.get(np.arange(5)), generic.images.get(np.arange(5))
    )  # float16 in [0,1] round-trips uint8
    for name, g in generic.subjects.items():
        m = me2.subjects[name]
        for field in ("row", "image", "session", "split", "repeat"):
            assert np.array_equal(
                getattr(m.trials, field)[np.argsort(m.trials.row)], getattr(g.trials, field)
            ), field
        betas = g.read(np.arange(g.n_trials))
        train = g.trials.split == "train"
        expected = (betas - betas[train].mean(0)) / betas[train].std(0)
        np.testing.assert_allclose(m.read(np.arange(m.n_trials)), expected, atol=1e-4)
        assert np.array_equal(m.roi, g.roi)
        imgs = generic.images.get(np.arange(6))
        zpred, gpred = (
            EncodingModel.load(small / "mindeye2", name).predict(imgs),
            EncodingModel.load(small, name).predict(imgs),
        )
        np.testing.assert_allclose(zpred, (gpred - betas[train].mean(0)) / betas[train].std(0), atol=1e-3)


def test_noise_ceiling_from_test_repeats_matches_the_configured_one(small):
    ds = open_dataset(small)
    for name, s in ds.subjects.items():
        model = EncodingModel.load(small, name)
        betas = s.read(np.arange(s.n_trials))
        measured = noise_ceiling(betas, s.trials.image, s.trials.split)
        test_ids = np.unique(s.trials.image[s.trials.split == "test"])
        signal = model.predict(ds.images.get(test_ids)).var(
            axis=0, ddof=1
        )  # true signal variance on these images
        expected = signal / (signal + model.params["noise_sd"] ** 2)
        factor = model.meta["noise_factor"]
        for roi in model.roi_names:
            m = model.roi == roi
            assert np.median(measured[m]) == pytest.approx(np.median(expected[m]), abs=0.06), roi
            configured = 1 / (
                1 + (1 - NOISE_CEILING[roi]) / NOISE_CEILING[roi] * factor**2
            )  # ROI median after the subject's noise factor
            assert np.median(model.params["target_nc"][m]) == pytest.approx(configured, abs=0.08), roi


def _ridge(x_train, y_train, x_test, lam):
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xs, ym = (x_train - mu) / sd, y_train.mean(0)
    w = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ (y_train - ym))
    return ((x_test - mu) / sd) @ w + ym


def _auc(score, label):
    pos, neg = score[label > 0.5], score[label < 0.5]
    return (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()


def _split(ds, s):
    rows = s.train_rows()
    test = s.test_set(3)
    return s.read(rows), s.image_of_rows(rows), s.test_betas(test), test.images


def test_pRF_voxels_are_predicted_from_filter_bank_features(small):
    from neuraldiffuser.simulate.features import FilterBank

    ds = open_dataset(small)
    s = ds.subjects["subj01"]
    x_tr, i_tr, x_te, i_te = _split(ds, s)
    bank = FilterBank(64)
    images = np.unique(np.concatenate([i_tr, i_te]))
    f = bank.maps(ds.images.get(images))
    f = (
        f.reshape(len(f), f.shape[1], 8, 4, 8, 4).mean(axis=(3, 5)).reshape(len(f), -1)
    )  # 26 channels on an 8x8 grid
    lookup = {int(i): k for k, i in enumerate(images)}
    v1 = s.roi == "V1"
    pred = _ridge(f[[lookup[int(i)] for i in i_tr]], x_tr[:, v1], f[[lookup[int(i)] for i in i_te]], lam=3e3)
    r = np.array([np.corrcoef(pred[:, k], x_te[:, v1][:, k])[0, 1] for k in range(v1.sum())])
    shuffled = np.array([np.corrcoef(pred[:, k], x_te[::-1, v1][:, k])[0, 1] for k in range(v1.sum())])
    assert np.median(r) > 0.45 and np.median(r) > np.median(shuffled) + 0.35


def test_colour_and_shape_are_decodable_from_higher_visual_voxels(small):
    ds = open_dataset(small)
    records = json.loads((small / "simulator" / "scenes.json").read_text())
    attrs = attribute_vectors(records)
    for name, s in ds.subjects.items():
        x_tr, i_tr, x_te, i_te = _split(ds, s)
        higher = np.isin(s.roi, HIGHER)
        for group, floor in (("color", 0.75), ("shape", 0.65)):
            cols = [ATTRIBUTES.index(a) for a in GROUPS[group]]
            pred = _ridge(x_tr[:, higher], attrs[i_tr][:, cols], x_te[:, higher], lam=300.0)
            aucs = [
                _auc(pred[:, k], attrs[i_te][:, c])
                for k, c in enumerate(cols)
                if 0 < attrs[i_te][:, c].sum() < len(i_te)
            ]
            assert np.mean(aucs) > floor, (name, group, np.mean(aucs))  # chance: 0.5


def test_v1_carries_more_position_information_than_higher_visual_cortex(small):
    """A pRF-mapping experiment on the encoding models: where is a small disc? (single
    trials, noise included)."""
    from neuraldiffuser.simulate.scenes import render

    rng = np.random.default_rng(0)
    xy = rng.uniform(0.15, 0.85, (300, 2))
    probes = render(
        [
            {
                "background": {"kind": "solid", "color": "gray"},
                "objects": [
                    {
                        "shape": "circle",
                        "color": "white",
                        "size": "small",
                        "x": float(x),
                        "y": float(y),
                        "rotation": 0.0,
                    }
                ],
            }
            for x, y in xy
        ],
        64,
    )
    for name in ("subj01", "subj02"):
        model = EncodingModel.load(small, name)
        responses = (
            model.predict(probes) + rng.normal(0, 1, (len(probes), model.n_voxels)) * model.params["noise_sd"]
        )
        higher, v1 = np.flatnonzero(np.isin(model.roi, HIGHER)), np.flatnonzero(model.roi == "V1")
        k = min(len(higher), len(v1))  # the same number of voxels
        error = {}
        for label, idx in (("V1", v1[:k]), ("higher", higher[:k])):
            pred = _ridge(responses[:220, idx], xy[:220], responses[220:, idx], lam=100.0)
            error[label] = np.linalg.norm(pred - xy[220:], axis=1).mean() * 8.4  # degrees of visual angle
        assert error["V1"] < 1.3 and error["V1"] < 0.75 * error["higher"], (name, error)


def test_attribute_vectors_are_the_records_multi_hot_codes():
    rec = {
        "background": {"kind": "checker", "color": "blue"},
        "objects": [
            {"shape": "star", "color": "red", "size": "small", "row": "top", "col": "left"},
            {"shape": "ring", "color": "red", "size": "large", "row": "bottom", "col": "left"},
        ],
    }
    v = attribute_vectors([rec])[0]
    on = {ATTRIBUTES[i] for i in np.flatnonzero(v)}
    assert on == {
        "shape:star",
        "shape:ring",
        "color:red",
        "size:small",
        "size:large",
        "row:top",
        "row:bottom",
        "col:left",
        "count:2",
        "background:checker",
        "background_color:blue",
    }


def test_encoding_model_checks_its_inputs_and_resizes_other_resolutions(small):
    from neuraldiffuser.errors import DataError
    from neuraldiffuser.simulate.scenes import render

    model = EncodingModel.load(small, "subj02")
    records = json.loads((small / "simulator" / "scenes.json").read_text())[:12]
    at64, at128 = model.predict(render(records, 64)), model.predict(render(records, 128))
    assert at128.shape == at64.shape == (12, model.n_voxels)
    r = [np.corrcoef(at64[:, v], at128[:, v])[0, 1] for v in range(0, model.n_voxels, 7)]
    assert np.median(r) > 0.9  # the same scenes drawn at twice the resolution evoke nearly the same responses
    np.testing.assert_allclose(
        model.predict(render(records[:1], 64)[0]), at64[:1], atol=1e-4
    )  # one (H, W, 3) image
    with pytest.raises(DataError, match="uint8"):
        model.predict(render(records, 64).astype(np.float32))
    with pytest.raises(DataError, match="have: subj01, subj02"):
        EncodingModel.load(small, "subj07")
