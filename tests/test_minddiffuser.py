"""MindDiffuser decoders: voxel-selection ridge against a direct least-squares solution, remain-rate masks on
data with known predictable features, short-text c, fitting and decoding a run, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decoder_fixtures import make_decoder_data, one_thread
from neuraldiffuser.config import load_config
from neuraldiffuser.errors import DataError, ModelLoadError
from neuraldiffuser.methods.minddiffuser.decoders import (
    decode_minddiffuser,
    encode_short,
    fit_minddiffuser,
    scatter_g,
)
from neuraldiffuser.methods.minddiffuser.masks import kfold_slices, predictability, remain_mask
from neuraldiffuser.methods.minddiffuser.ridge import VoxelSelectionRidge
from neuraldiffuser.targets.store import TargetStore


def direct_fit(x: np.ndarray, y: np.ndarray, k: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Selected voxels by |np.corrcoef| and predictions of the augmented least-squares problem
    min ‖[X_S, 1] w − y_std‖² + α‖w‖² solved with np.linalg.lstsq, mapped back to y's scale."""
    r = np.array(
        [0.0 if x[:, j].std() == 0 else abs(np.corrcoef(x[:, j], y)[0, 1]) for j in range(x.shape[1])]
    )
    sel = np.argsort(-r, kind="stable")[:k]
    a = np.hstack([x[:, sel], np.ones((len(x), 1))])
    ys = (y - y.mean()) / y.std()
    w = np.linalg.lstsq(
        np.vstack([a, np.sqrt(alpha) * np.eye(k + 1)]), np.concatenate([ys, np.zeros(k + 1)]), rcond=None
    )[0]
    return sel, (a @ w) * y.std() + y.mean()


@pytest.fixture
def regression():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70, 30))
    x[:, 4] = 2.0  # a constant voxel is never selected
    y = x[:, [0, 1, 2, 3, 5]] @ rng.standard_normal((5, 6)) + 0.4 * rng.standard_normal((70, 6)) + 3.0
    y[:, 5] = -1.5  # a constant output is predicted as that constant
    return x, y


def test_selection_ridge_equals_least_squares_on_the_selected_voxels(regression):
    x, y = regression
    model = VoxelSelectionRidge(n_feat=8, alpha=0.9, memory_mb=16).fit(x, y)
    pred = model.predict(x)
    for p in range(5):
        sel, expected = direct_fit(x, y[:, p], 8, 0.9)
        assert set(model.index[p].tolist()) == set(sel.tolist()) and 4 not in model.index[p].tolist()
        np.testing.assert_allclose(pred[:, p], expected, rtol=0, atol=2e-5)
    np.testing.assert_allclose(pred[:, 5], -1.5, atol=1e-6)
    # no selection (n_feat ≥ voxels) is the plain penalised fit on every voxel
    full = VoxelSelectionRidge(n_feat=100, alpha=0.9).fit(x, y).predict(x)
    a = np.hstack([x, np.ones((70, 1))])
    ys = (y[:, 0] - y[:, 0].mean()) / y[:, 0].std()
    w = np.linalg.solve(a.T @ a + 0.9 * np.eye(31), a.T @ ys)
    np.testing.assert_allclose(full[:, 0], (a @ w) * y[:, 0].std() + y[:, 0].mean(), atol=2e-5)


def test_chunking_does_not_change_the_fit_and_save_load_round_trips(regression, tmp_path):
    x, y = regression
    a = VoxelSelectionRidge(6, 0.15, memory_mb=16).fit(x, y)
    b = VoxelSelectionRidge(6, 0.15, memory_mb=16)
    b._chunk = lambda k, n=None, v=0: 1  # one output per batched solve
    b.fit(x, y)
    assert torch.equal(a.index, b.index)
    np.testing.assert_allclose(a.predict(x), b.predict(x), atol=1e-6)
    a.save(tmp_path / "r")
    c = VoxelSelectionRidge.from_pretrained(tmp_path / "r")
    assert torch.equal(c.index, a.index) and np.array_equal(c.predict(x[:5]), a.predict(x[:5]))
    with pytest.raises(DataError, match="30 voxels"):
        c.predict(x[:, :10])
    with pytest.raises(ModelLoadError):
        VoxelSelectionRidge.from_pretrained(tmp_path / "missing")


def test_dual_form_gives_the_primal_fit_with_fewer_rows_than_voxels():
    """n < k: the n×n dual system (chosen automatically) gives the (k+1)×(k+1) primal weights, selected
    or not, and both match the direct least squares."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 60))
    x[:, 7] = 1.0
    y = x[:, :5] @ rng.standard_normal((5, 9)) + 0.3 * rng.standard_normal((12, 9))
    auto = VoxelSelectionRidge(30, 0.15, memory_mb=1)
    assert auto.use_dual(12, 30) and not auto.use_dual(70, 8)
    auto._chunk = lambda k, n=None, v=0: 4  # several chunks
    auto.fit(x, y)
    primal = VoxelSelectionRidge(30, 0.15, form="primal").fit(x, y)
    assert torch.equal(auto.index, primal.index)
    np.testing.assert_allclose(auto.coef, primal.coef, rtol=0, atol=1e-5)
    np.testing.assert_allclose(auto.bias, primal.bias, rtol=0, atol=1e-5)
    for p in range(3):
        sel, expected = direct_fit(x, y[:, p], 30, 0.15)
        assert set(auto.index[p].tolist()) == set(sel.tolist())
        np.testing.assert_allclose(auto.predict(x)[:, p], expected, rtol=0, atol=2e-5)
    every = [VoxelSelectionRidge(100, 0.15, form=f).fit(x, y).predict(x) for f in ("dual", "primal")]
    np.testing.assert_allclose(every[0], every[1], rtol=0, atol=2e-5)
    with pytest.raises(ValueError, match="form"):
        VoxelSelectionRidge(3, 0.1, form="kernel")


def test_masks_keep_the_predictable_features():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 20))
    informative = x[:, :4] @ rng.standard_normal((4, 5))
    y = np.concatenate([informative, rng.standard_normal((60, 15))], axis=1)  # 5 predictable of 20
    assert [s.stop - s.start for s in kfold_slices(62, 5)] == [13, 13, 12, 12, 12]
    scores = predictability(x, y, n_feat=6, alpha=0.15, folds=5)
    assert scores[:5].min() > 0.9 and scores[5:].max() < 0.6
    mask = remain_mask(scores, 25.0)
    assert mask.sum() == 5 and mask[:5].all()
    with pytest.raises(DataError, match="at least 5"):
        kfold_slices(3, 5)


def test_short_text_keeps_the_causal_prefix_and_a_constant_first_token(tiny_stack):
    from neuraldiffuser.config.sections.zoo import ZooConfig
    from neuraldiffuser.zoo.loader import Components

    comp = Components(ZooConfig(path=str(tiny_stack)))
    caps = [["a red circle"], ["two blue squares on a green background", "a star"]]
    short = encode_short(comp, caps, 6)
    assert short.shape == (2, 6, 16)
    full = comp.encode_text(["a red circle"])[0]
    torch.testing.assert_close(
        short[0], full[:6], atol=1e-5, rtol=0
    )  # causal attention: a short prefix is unchanged
    empty = encode_short(comp, [[""]], 6)[0, 0]
    torch.testing.assert_close(short[:, 0], empty.expand(2, -1), atol=1e-5, rtol=0)
    with pytest.raises(DataError, match="positions"):
        encode_short(comp, caps, 78)


def test_scatter_keeps_the_mask_recoverable():
    masks = {
        "mask0": np.array([[True, False], [False, True]]),
        "mask1": np.array([[False, True], [True, True]]),
    }
    pred = {0: np.array([[1.0, 0.0]]), 1: np.array([[2.0, 3.0, 4.0]])}
    g = scatter_g(pred, masks, [2, 2, 2])
    assert np.array_equal(g[0, 0] != 0, masks["mask0"]) and np.array_equal(g[0, 1] != 0, masks["mask1"])
    assert (
        g[0, 0, 0, 0] == 1.0
        and 0 < g[0, 0, 1, 1] < 1e-30
        and list(g[0, 1][masks["mask1"]]) == [2.0, 3.0, 4.0]
    )


@pytest.fixture
def fitted(tmp_path, tiny_stack):
    ds, targets, _ = make_decoder_data(
        tmp_path, subjects=(("subj01", 30), ("subj02", 36)), n_train=60, n_test=8
    )
    cfg = load_config(
        overrides={
            "data": {"path": str(ds)},
            "zoo": {"path": str(tiny_stack)},
            "minddiffuser": {
                "text_max_length": 5,
                "n_feat_c": 6,
                "n_feat_z": 10,
                "n_feat_g": [5, 4],
                "remain_rate": 40.0,
            },
        }
    )
    with one_thread():
        summary = fit_minddiffuser(cfg, tmp_path / "run", targets)
    return cfg, tmp_path / "run", targets, summary


def test_fit_and_decode_a_run(fitted, tmp_path):
    cfg, run, targets, summary = fitted
    dec = run / "decoders"
    assert {"c", "z", "mask0", "mask1", "g0", "g1"} <= set(summary["fits"])
    assert summary["fits"]["mask0"]["kept"] == 12 and summary["fits"]["g1"]["n_feat"] == 4  # 40% of 5×6
    decoded = decode_minddiffuser(cfg, run, tmp_path / "decoded.hdf5")
    with TargetStore(decoded) as st, TargetStore(targets) as truth:
        assert (
            st.attrs["method"] == "minddiffuser"
            and st.attrs["text_max_length"] == 5
            and st.attrs["subject"] == "subj01"
        )
        order = st.image
        assert (
            sorted(order) == list(range(8))
            and st.shape("c") == (5, 16)
            and st.shape("z") == (4, 8, 8)
            and st.shape("g") == (2, 5, 6)
        )
        g, z, c = st.get("g", np.arange(8)), st.get("z", np.arange(8)), st.get("c", np.arange(8))
        z_true = truth.get_images("z", order)
    from safetensors.numpy import load_file

    masks = load_file(str(dec / "masks.safetensors"))
    assert np.array_equal(g[:, 0] != 0, np.broadcast_to(masks["mask0"].astype(bool), (8, 5, 6)))
    assert np.allclose(c[:, 0], load_file(str(dec / "c_first.safetensors"))["first"])
    # the linear-Gaussian data are decodable: test predictions correlate with the truth
    r = [np.corrcoef(z.reshape(8, -1)[:, j], z_true.reshape(8, -1)[:, j])[0, 1] for j in range(0, 256, 16)]
    assert np.mean(r) > 0.5
    # decoding equals the saved models applied to the test voxels
    from neuraldiffuser.data import VoxelScaler, open_dataset

    subj = open_dataset(cfg.data.path).subject("subj01")
    test = subj.test_set(3)
    assert np.array_equal(test.images, order)
    x = VoxelScaler.load(dec / "scaler.safetensors").transform(subj.test_betas(test))
    np.testing.assert_allclose(
        z.reshape(8, -1), VoxelSelectionRidge.from_pretrained(dec / "z").predict(x), atol=1e-6
    )


def test_fit_resumes_finished_parts(fitted):
    cfg, run, targets, _ = fitted
    before = (run / "decoders" / "z" / "model.safetensors").stat().st_mtime_ns
    summary = fit_minddiffuser(cfg, run, targets)
    assert (
        summary["fits"] == {} and (run / "decoders" / "z" / "model.safetensors").stat().st_mtime_ns == before
    )
    bad = cfg.model_copy(deep=True)
    bad.minddiffuser.n_feat_g = [5]
    with pytest.raises(DataError, match="n_feat_g"):
        fit_minddiffuser(bad, run, targets)


def test_command_line_train_decode_reconstruct(tmp_path, tiny_stack):
    import json

    from neuraldiffuser.cli.main import main

    ds, targets, _ = make_decoder_data(
        tmp_path, subjects=(("subj01", 30), ("subj02", 36)), n_train=40, n_test=4
    )
    sets = [
        "--set",
        f"zoo.path={tiny_stack}",
        "--set",
        "minddiffuser.text_max_length=4",
        "--set",
        "minddiffuser.n_feat_g=[5,5]",
        "--set",
        "minddiffuser.n_feat_z=8",
        "--set",
        "minddiffuser.n_feat_c=8",
    ]
    run = tmp_path / "run"
    with one_thread():
        assert main(["train", str(ds), str(targets), "--method", "minddiffuser", "-o", str(run), *sets]) == 0
        assert (
            main(["train", str(ds), str(targets), "--method", "minddiffuser", "-o", str(run), *sets]) == 2
        )  # not empty, no --resume
        assert (
            main(
                [
                    "train",
                    str(ds),
                    str(targets),
                    "--method",
                    "minddiffuser",
                    "-o",
                    str(run),
                    "--resume",
                    *sets[:-2],
                    "--set",
                    "minddiffuser.n_feat_c=9",
                ]
            )
            == 2
        )
        assert main(["train", str(ds), str(targets), "--method", "nosuch", "-o", str(tmp_path / "x")]) == 2
        assert main(["decode", str(run)]) == 0 and main(["decode", str(run), "--ridge"]) == 2
        with TargetStore(run / "decoded.hdf5") as st:
            assert st.attrs["method"] == "minddiffuser" and st.shape("c") == (4, 16) and len(st) == 4
        # stage 1 from the decoded c and z (the fixture's g is not the tiny tower's, so no stage 2 here)
        assert (
            main(
                [
                    "reconstruct",
                    str(run),
                    "--method",
                    "minddiffuser",
                    "-o",
                    str(tmp_path / "recon"),
                    "--limit",
                    "2",
                    "--repeats",
                    "1",
                    "--set",
                    "minddiffuser.iterations=0",
                    "--set",
                    "minddiffuser.steps=4",
                    "--set",
                    "minddiffuser.noise_index=2",
                    "--set",
                    "minddiffuser.denoise_steps=2",
                ]
            )
            == 0
        )
    m = json.loads(
        (tmp_path / "recon" / "minddiffuser" / "iterations=0_optimise=z" / "manifest.json").read_text()
    )
    assert (
        m["method"] == "minddiffuser"
        and m["complete"]
        and len(m["images"]) == 2
        and m["targets"] == str((run / "decoded.hdf5").resolve())
    )


def test_decode_repeat_averaging_and_test_zscoring(fitted, tmp_path):
    cfg, run, _, _ = fitted
    a = decode_minddiffuser(cfg, run, tmp_path / "voxels.hdf5")
    outputs = cfg.model_copy(deep=True)
    outputs.data.average = "outputs"
    b = decode_minddiffuser(outputs, run, tmp_path / "outputs.hdf5")
    leak = cfg.model_copy(deep=True)
    leak.minddiffuser.test_zscore = "test"
    c = decode_minddiffuser(leak, run, tmp_path / "leak.hdf5")
    with TargetStore(a) as sa, TargetStore(b) as sb, TargetStore(c) as sc:
        rows = np.arange(len(sa))
        np.testing.assert_allclose(
            sa.get("z", rows), sb.get("z", rows), atol=1e-4
        )  # linear decoders: same either way
        assert sb.attrs["average"] == "outputs" and sc.attrs["test_zscore"] == "test"
        assert np.abs(sa.get("z", rows) - sc.get("z", rows)).max() > 1e-3
    from neuraldiffuser.data import open_dataset

    subj = open_dataset(cfg.data.path).subject("subj01")
    raw = subj.test_betas(subj.test_set(3))
    x = (raw - raw.mean(0)) / (raw.std(0) + 1e-6)
    with TargetStore(c) as sc:
        np.testing.assert_allclose(
            sc.get("z", np.arange(len(sc))).reshape(len(x), -1),
            VoxelSelectionRidge.from_pretrained(run / "decoders" / "z").predict(x),
            atol=1e-5,
        )


def test_pipeline_decodes_like_the_stage_and_samples_each_image_with_its_seed(fitted, tmp_path):
    from neuraldiffuser import MindDiffuserPipeline, load_pipeline
    from neuraldiffuser.config import save_config
    from neuraldiffuser.data import open_dataset
    from neuraldiffuser.methods.minddiffuser.sampler import MindDiffuserSampler
    from neuraldiffuser.sampling.runner import to_uint8

    cfg, run, _, _ = fitted
    cfg = cfg.model_copy(deep=True)
    cfg.minddiffuser = cfg.minddiffuser.model_copy(
        update={"iterations": 0, "steps": 4, "noise_index": 3, "denoise_steps": 2}
    )
    save_config(cfg, run)  # the fixture's g is not the tiny tower's: stage 1 only
    pipe = load_pipeline(run)
    assert isinstance(pipe, MindDiffuserPipeline) and pipe.subject == "subj01"
    subj = open_dataset(cfg.data.path).subject("subj01")
    test = subj.test_set(3)
    decoded = decode_minddiffuser(cfg, run, tmp_path / "decoded.hdf5")
    ours = pipe.decode(subj.test_betas(test))
    with TargetStore(decoded) as st:
        for k in ("c", "z", "g"):
            np.testing.assert_allclose(ours[k], st.get(k, np.arange(len(st))), atol=1e-6)
    with one_thread():
        images = pipe(subj.test_betas(test)[:2], images=test.images[:2], repeats=1)
        sampler = MindDiffuserSampler(pipe.components, cfg.minddiffuser, 1)
        expected = to_uint8(
            sampler(
                torch.from_numpy(ours["c"][1]),
                torch.from_numpy(ours["z"][1]),
                seed=cfg.seed + int(test.images[1]),
            )
        )
    assert images.shape == (2, 1, 16, 16, 3) and np.array_equal(images[1], expected)
    import shutil

    moved = shutil.move(str(pipe.save_pretrained(tmp_path / "saved")), str(tmp_path / "elsewhere"))
    again = load_pipeline(moved)
    assert isinstance(again, MindDiffuserPipeline) and again.config.zoo.path == str(
        (tmp_path / "elsewhere" / "zoo").resolve()
    )
    for k, v in again.decode(subj.test_betas(test)).items():
        np.testing.assert_array_equal(v, ours[k])
