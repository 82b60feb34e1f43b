"""Small-data scoring at the stimulus' own size: formulas against independent implementations,
baselines, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.signal import correlate2d

from decoder_fixtures import one_thread
from neuraldiffuser.cli.main import main
from neuraldiffuser.data import open_dataset
from neuraldiffuser.data.fit import to_stack, to_stimulus
from neuraldiffuser.data.importer import import_dataset
from neuraldiffuser.evaluation.native import native_evaluation, ridge_loo, score_pairs
from neuraldiffuser.evaluation.recon import find_recon_folders


def wang_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 ssim_index.m: 11 × 11 Gaussian (σ 1.5) window, 'valid' filtering, K =
    (0.01, 0.03), L = 1."""
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * 1.5**2))
    w = g / g.sum()
    f = lambda x: correlate2d(x, w, mode="valid")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return float(
        (((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))).mean()
    )


def test_score_pairs_known_answers():
    rng = np.random.default_rng(0)
    real = rng.uniform(0.2, 0.8, size=(3, 28, 28))
    pred = np.clip(real + rng.normal(0, 0.1, size=real.shape), 0, 1)
    s = score_pairs(real, real + 0.1)
    np.testing.assert_allclose(s["mse"], 0.01, rtol=1e-12)
    np.testing.assert_allclose(s["pcc"], 1.0, atol=1e-12)  # an offset keeps the correlation
    same = score_pairs(real, real)
    assert (
        np.allclose(same["ssim_wang"], 1)
        and np.allclose(same["ssim_skimage"], 1)
        and np.allclose(same["mse"], 0)
    )
    s = score_pairs(real, pred)
    np.testing.assert_allclose(
        s["ssim_wang"], [wang_ssim(a, b) for a, b in zip(real, pred, strict=True)], atol=1e-10
    )
    np.testing.assert_allclose(
        s["pcc"],
        [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(real, pred, strict=True)],
        atol=1e-12,
    )
    assert not np.allclose(s["ssim_wang"], s["ssim_skimage"], atol=1e-3)  # two conventions, two numbers


def test_ridge_loo_matches_brute_force_refits():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((15, 40))
    y = x @ rng.standard_normal((40, 3)) + rng.standard_normal((15, 3))
    x, y = x - x.mean(0), y - y.mean(0)
    alphas = [0.1, 10.0, 1000.0]

    def loo(a):
        err = 0.0
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            w = x[keep].T @ np.linalg.solve(x[keep] @ x[keep].T + a * np.eye(len(x) - 1), y[keep])
            err += ((y[i] - x[i] @ w) ** 2).sum()
        return err

    best, dual = ridge_loo(x, y, alphas)
    assert best == alphas[int(np.argmin([loo(a) for a in alphas]))]
    np.testing.assert_allclose(
        x @ x.T @ dual, x @ x.T @ np.linalg.solve(x @ x.T + best * np.eye(15), y), atol=1e-8
    )


def test_fit_policy_round_trips_size_and_mode():
    rng = np.random.default_rng(2)
    grey = np.repeat(rng.integers(0, 256, (2, 20, 12, 1), dtype=np.uint8), 3, axis=-1)
    stack = to_stack(grey, 64)
    assert stack.shape == (2, 64, 64, 3)
    back = to_stimulus(stack, (20, 12), "L")
    assert (
        back.shape == (2, 20, 12) and np.abs(back.astype(int) - grey[..., 0]).mean() < 25
    )  # Lanczos there and back
    assert (
        to_stimulus(to_stack(grey[:, :12, :12], 12), (12, 12), "L").tolist() == grey[:, :12, :12, 0].tolist()
    )  # same size: exact


@pytest.fixture
def native_set(tmp_path):
    """24 greyscale 16 × 16 images, betas linear in the pixels (+ noise), 6 test images; a
    perfect recon folder."""
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (24, 16, 16), dtype=np.uint8)
    betas = images.reshape(24, -1).astype(np.float32) / 255 @ rng.standard_normal((256, 300)).astype(
        np.float32
    ) + rng.normal(0, 0.5, (24, 300))
    root = import_dataset(tmp_path / "ds", images, betas.astype(np.float32), test=list(range(18, 24)))
    folder = tmp_path / "recon" / "perfect" / "s"
    (folder / "images").mkdir(parents=True)
    files = {}
    for i in range(18, 24):
        Image.fromarray(to_stack(np.repeat(images[i : i + 1, ..., None], 3, -1), 64)[0]).save(
            folder / "images" / f"{i}_r0.png"
        )
        files[str(i)] = [f"images/{i}_r0.png"]
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "method": "perfect",
                "setting": "s",
                "repeats": 1,
                "images": list(range(18, 24)),
                "files": files,
                "subject": "subj01",
            }
        )
    )
    return root, images, tmp_path / "recon"


def test_native_evaluation_scores_baselines_and_recons(native_set):
    root, images, recon = native_set
    doc = native_evaluation(find_recon_folders([recon]), open_dataset(root))
    rows = {r["method"]: r for r in doc["rows"]}
    assert (
        doc["protocol"]["size"] == [16, 16]
        and doc["protocol"]["mode"] == "L"
        and doc["images"] == list(range(18, 24))
    )
    mean = images[:18].astype(float).mean(0) / 255
    expect = [((images[i] / 255 - mean) ** 2).mean() for i in range(18, 24)]
    np.testing.assert_allclose(rows["mean_image"]["per_image"]["mse"], expect, rtol=1e-9)
    assert (
        rows["perfect"]["values"]["pcc"]["mean"] > 0.95
        and rows["perfect"]["values"]["ssim_wang"]["mean"] > 0.85
    )  # white noise through 16 → 64 → 16 px: 0.967
    assert rows["pixel_ridge"]["values"]["pcc"]["mean"] > rows["mean_image"]["values"]["pcc"]["mean"]


def test_cli_native_writes_json(native_set, tmp_path, capsys):
    root, _, recon = native_set
    assert (
        main(["evaluate", str(recon), "--truth", str(root), "--native", "--out", str(tmp_path / "ev")]) == 0
    )
    out = capsys.readouterr().out
    assert "pixel_ridge" in out and "mean_image" in out and "16×16 L" in out
    doc = json.loads((tmp_path / "ev" / "native.json").read_text())
    assert len(doc["rows"]) == 3 and len(doc["rows"][2]["per_image"]["ssim_wang"]) == 6


def test_reconstructions_are_also_written_at_the_stimulus_size_and_mode(tmp_path):
    from neuraldiffuser.sampling.runner import write_native

    out = np.random.default_rng(5).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    record = write_native({"stimulus_size": [28, 28], "stimulus_mode": "L"}, out, tmp_path, 7)
    assert record == {"native": ["native/00007_r0.png", "native/00007_r1.png"]}
    with Image.open(tmp_path / record["native"][1]) as im:
        assert im.mode == "L" and im.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(im), to_stimulus(out[1:], (28, 28), "L")[0])
    assert (
        write_native({"stimulus_size": [64, 64], "stimulus_mode": "RGB"}, out, tmp_path, 8) == {}
    )  # already the stimulus
    assert write_native({}, out, tmp_path, 9) == {}  # simulated/NSD sets: nothing extra


def test_held_out_training_images_are_scored_without_baselines(native_set, tmp_path):
    root, images, recon = native_set
    folder = recon / "perfect" / "s"
    m = json.loads((folder / "manifest.json").read_text())
    for i in (18, 19):  # relabel two files as training images 2 and 3 (what `decode --holdout` reconstructs)
        (folder / "images" / f"{i}_r0.png").rename(folder / "images" / f"{i - 16}_r0.png")
    m.update(images=[2, 3], files={"2": ["images/2_r0.png"], "3": ["images/3_r0.png"]})
    (folder / "manifest.json").write_text(json.dumps(m))
    doc = native_evaluation(find_recon_folders([recon]), open_dataset(root))
    assert (
        [r["method"] for r in doc["rows"]] == ["perfect"]
        and doc["images"] == [2, 3]
        and doc["protocol"]["ridge_alpha"] is None
    )
    assert (
        doc["rows"][0]["values"]["pcc"]["mean"] < 0.5
    )  # images 18, 19 scored against stimuli 2, 3: unrelated noise


def test_sampler_settings_are_chosen_by_native_scores(native_set, tiny_stack, tmp_path):
    from neuraldiffuser.config import load_config
    from neuraldiffuser.sampling.validate import choose_sampler_settings, criterion
    from neuraldiffuser.targets.store import write_store

    root, stimuli, _ = native_set
    rng = np.random.default_rng(0)
    shapes = {"c": (77, 16), "z": (4, 8, 8), "g": (6, 17, 16)}
    images = np.arange(2, 5)  # training images, as `decode --holdout` gives
    decoded = write_store(
        tmp_path / "held.hdf5",
        images,
        {k: rng.standard_normal((3, *s)).astype(np.float32) for k, s in shapes.items()},
        attrs={"subject": "subj01"},
    )
    cfg = load_config(
        overrides={
            "zoo": {"path": str(tiny_stack)},
            "data": {"path": str(root)},
            "sampler": {"steps": 4, "repeats": 1, "autocast": "off"},
        }
    )
    grid = [{"strength": 0.25, "kappa": 0.0, "eta": 0.0}, {"strength": 1.0, "kappa": 0.0, "eta": 0.0}]
    with one_thread():
        best, table = choose_sampler_settings(cfg, decoded, tmp_path / "val", grid)
    assert (
        len(table) == 2
        and table[0]["score"] >= table[1]["score"]
        and best == {k: table[0][k] for k in grid[0]}
    )
    folder = tmp_path / "val" / f"strength={best['strength']:g}" / "neuraldiffuser" / "kappa=0_eta=0"
    scores = score_folder_of(folder, root)
    var = (stimuli[2:5] / 255.0).reshape(3, -1).var(1).mean()  # R² = 1 − MSE / the stimuli's pixel variance
    expect = scores["pcc"].mean() + scores["ssim_wang"].mean() + 1 - scores["mse"].mean() / var
    assert (
        criterion(scores, var)
        == pytest.approx(table[0]["score"], abs=1e-9)
        == pytest.approx(expect, abs=1e-9)
    )


def test_each_grid_point_reconstructs_from_the_file_of_its_decode_setting(native_set, tiny_stack, tmp_path):
    """Mapping {decode setting: file}: a point's z_match/z_ridge_weight pick its decoded file."""
    import shutil

    from neuraldiffuser.config import load_config
    from neuraldiffuser.sampling.validate import choose_sampler_settings, decode_setting
    from neuraldiffuser.targets.store import write_store

    root, _, _ = native_set
    shapes = {"c": (77, 16), "z": (4, 8, 8), "g": (6, 17, 16)}

    def store(name, seed):
        rng = np.random.default_rng(seed)
        return write_store(
            tmp_path / name,
            np.arange(2, 5),
            {k: rng.standard_normal((3, *s)).astype(np.float32) for k, s in shapes.items()},
            attrs={"subject": "subj01"},
        )

    a, b = store("a.hdf5", 0), store("b.hdf5", 1)
    shutil.copy(a, tmp_path / "a_copy.hdf5")
    grid = [
        {"z_match": False, "z_ridge_weight": w, "strength": 0.5, "kappa": 0.0, "eta": 0.0}
        for w in (0.0, 0.5, 1.0)
    ]
    files = dict(zip(map(decode_setting, grid), [a, tmp_path / "a_copy.hdf5", b], strict=True))
    cfg = load_config(
        overrides={
            "zoo": {"path": str(tiny_stack)},
            "data": {"path": str(root)},
            "sampler": {"steps": 4, "repeats": 1, "autocast": "off"},
        }
    )
    with one_thread():
        _, table = choose_sampler_settings(cfg, files, tmp_path / "val", grid)
    score = {r["z_ridge_weight"]: r["score"] for r in table}
    assert score[0.0] == pytest.approx(score[0.5], abs=1e-9)  # the same z (a file and its copy)
    assert abs(score[0.0] - score[1.0]) > 1e-4  # another z


def score_folder_of(folder, root):
    from neuraldiffuser.evaluation.native import score_folder
    from neuraldiffuser.evaluation.recon import read_recon_manifest as read_manifest

    return score_folder(read_manifest(folder), open_dataset(root))


def test_extract_pads_non_square_stimuli_like_the_stack():
    from neuraldiffuser.targets.extract import resize_images

    rng = np.random.default_rng(6)
    wide = rng.integers(0, 256, (1, 10, 20, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_images(wide, 20), to_stack(wide, 20))  # padded, not stretched
    assert (
        resize_images(wide, 20)[0, :5, 3].tolist() == [wide[0, 0, 3].tolist()] * 5
    )  # the top edge row repeated
