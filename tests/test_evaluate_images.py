"""`evaluate-images`: anyone's folders and strips, scored like `evaluate`, checked against an
independent computation.

The independent PixCorr and SSIM follow MindEye2's protocol as docs/evaluation.md writes it, calling
torchvision, numpy and scikit-image directly (not the package's metric code): Resize((256, 256)) of
float tensors, Resize(425, bilinear), np.corrcoef of the flattened RGB pixels; rgb2gray and
structural_similarity(gaussian_weights, σ 1.5, population covariance, data_range 1).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from neuraldiffuser.cli.main import main

FAST = "PixCorr,SSIM,Repeat SSIM"


def scene(seed: int, size: int) -> np.ndarray:
    """A smooth random colour scene (uint8, size²): blocks, a gradient and a disc."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.random((4, 4, 3)), np.ones((size // 4, size // 4, 1)))
    yy, xx = np.mgrid[0:size, 0:size] / size
    disc = ((yy - rng.random()) ** 2 + (xx - rng.random()) ** 2 < 0.05)[..., None] * rng.random(3)
    return np.clip(255 * (0.6 * blocks + 0.3 * yy[..., None] + disc), 0, 255).astype(np.uint8)


def noisy(img: np.ndarray, sd: float, seed: int) -> np.ndarray:
    return np.clip(img + np.random.default_rng(seed).normal(0, sd, img.shape), 0, 255).astype(np.uint8)


def write_strips(folder, n: int, tile: int, sd: float, seed: int, repeats: int = 5) -> dict[int, np.ndarray]:
    """Strips of (stimulus, repeats...) named by index (indices 3, 5, 7, ...); returns {index: stimulus}."""
    folder.mkdir(parents=True)
    truths = {}
    for k in range(n):
        index = 3 + 2 * k
        t = scene(index, tile)
        tiles = [t] + [noisy(t, sd, seed * 1000 + 10 * k + r) for r in range(repeats)]
        Image.fromarray(np.concatenate(tiles, axis=1)).save(folder / f"{index:05d}.png")
        truths[index] = t
    return truths


def protocol_256(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return TF.resize(x, [256, 256], interpolation=InterpolationMode.BILINEAR, antialias=False)


def independent(truth: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PixCorr and SSIM, computed directly with torchvision/numpy/skimage."""
    t425 = TF.resize(protocol_256(truth), 425, interpolation=InterpolationMode.BILINEAR, antialias=False)
    r425 = TF.resize(protocol_256(recon), 425, interpolation=InterpolationMode.BILINEAR, antialias=False)
    pix = [
        np.corrcoef(a.reshape(-1).numpy(), b.reshape(-1).numpy())[0, 1]
        for a, b in zip(t425, r425, strict=True)
    ]
    tg, rg = rgb2gray(t425.permute(0, 2, 3, 1).numpy()), rgb2gray(r425.permute(0, 2, 3, 1).numpy())
    ssim = [
        structural_similarity(
            b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        for a, b in zip(tg, rg, strict=True)
    ]
    return np.array(pix), np.array(ssim)


def tiles_of(folder, index: int, k: int, n_tiles: int = 6) -> np.ndarray:
    strip = np.asarray(Image.open(folder / f"{index:05d}.png").convert("RGB"))
    w = strip.shape[1] // n_tiles
    return strip[:, k * w : (k + 1) * w]


def run(args, capsys) -> tuple[int, str]:
    rc = main(["evaluate-images", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Two strip folders (96² tiles: upsampled to 256, as the released 128² ones are) scored once."""
    root = tmp_path_factory.mktemp("strips")
    write_strips(root / "unguided", 6, 96, sd=50, seed=1)
    write_strips(root / "guided", 6, 96, sd=25, seed=2)
    out = root / "out"
    rc = main(
        [
            "evaluate-images",
            str(root / "unguided"),
            str(root / "guided"),
            "--strips",
            "6",
            "--out",
            str(out),
            "--metrics",
            FAST,
            "--label",
            "unguided",
            "--label",
            "guided",
            "--no-report",
        ]
    )
    assert rc == 0
    return root, json.loads((out / "metrics.json").read_text())


def test_strips_agree_with_independent_pixcorr_and_ssim(held_out):
    root, doc = held_out
    rows = {(r["setting"], r["policy"]): r for r in doc["rows"]}
    for setting in ("unguided", "guided"):
        images = rows[(setting, "repeat0")]["images"]
        assert images == [3, 5, 7, 9, 11, 13]
        truth = np.stack([tiles_of(root / setting, i, 0) for i in images])
        per_rep = [
            independent(truth, np.stack([tiles_of(root / setting, i, r + 1) for i in images]))
            for r in range(5)
        ]
        pix0, ssim0 = per_rep[0]
        row = rows[(setting, "repeat0")]
        np.testing.assert_allclose(row["per_image"]["PixCorr"], pix0, atol=2e-3)
        np.testing.assert_allclose(row["per_image"]["SSIM"], ssim0, atol=2e-3)
        assert (
            abs(row["values"]["PixCorr"] - pix0.mean()) < 2e-3
            and abs(row["values"]["SSIM"] - ssim0.mean()) < 2e-3
        )
        mean = rows[(setting, "mean")]
        assert abs(mean["values"]["SSIM"] - np.mean([s.mean() for _, s in per_rep])) < 2e-3
        assert mean["values"]["Repeat SSIM"] > 0.1


def test_paired_guided_minus_unguided_is_in_the_json(held_out):
    _, doc = held_out
    rows = {(r["setting"], r["policy"]): r for r in doc["rows"]}
    comp = {c["policy"]: c for c in doc["comparisons"]}
    assert (
        set(comp) == {"repeat0", "mean"}
        and comp["repeat0"]["setting"] == "guided"
        and comp["repeat0"]["baseline"] == "unguided"
    )
    for policy in ("repeat0", "mean"):
        d = np.subtract(
            rows[("guided", policy)]["per_image"]["SSIM"], rows[("unguided", policy)]["per_image"]["SSIM"]
        )
        diff = comp[policy]["differences"]["SSIM"]
        assert diff["n"] == 6 and diff["mean"] == pytest.approx(d.mean(), abs=1e-12)
        half = 1.959963984540054 * d.std(ddof=1) / np.sqrt(6)
        assert diff["ci95"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-12)
        assert diff["mean"] > 0  # less noise in 'guided' must raise SSIM
    assert comp["mean"]["differences"]["Repeat SSIM"]["mean"] > 0


def test_files_layout_against_npy_hdf5_and_folder_truths(tmp_path, capsys):
    truth = np.stack([scene(i, 48) for i in range(5)])
    np.save(tmp_path / "truth.npy", truth)
    with h5py.File(tmp_path / "truth.hdf5", "w") as f:
        f["images"] = truth.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # channels first, floats
    (tmp_path / "tf").mkdir()
    rec = tmp_path / "rec"
    rec.mkdir()
    for i in (1, 2, 4):
        Image.fromarray(truth[i]).save(tmp_path / "tf" / f"{i:05d}.png")
        for r in range(2):
            Image.fromarray(
                noisy(np.asarray(Image.fromarray(truth[i]).resize((80, 80))), 30, 10 * i + r)
            ).save(rec / f"{i:05d}_r{r}.png")
    results = []
    for t in ("truth.npy", "truth.hdf5", "tf"):
        rc, text = run(
            [rec, "--truth", tmp_path / t, "--out", tmp_path / f"o_{t}", "--metrics", FAST, "--no-report"],
            capsys,
        )
        assert rc == 0, text
        doc = json.loads((tmp_path / f"o_{t}" / "metrics.json").read_text())
        row = next(r for r in doc["rows"] if r["policy"] == "repeat0")
        assert row["images"] == [1, 2, 4] and row["repeats"] == 2
        results.append(row["per_image"]["PixCorr"])
    recon0 = np.stack([np.asarray(Image.open(rec / f"{i:05d}_r0.png")) for i in (1, 2, 4)])
    pix, _ = independent(truth[[1, 2, 4]], recon0)
    for vals in results:
        np.testing.assert_allclose(vals, pix, atol=2e-3)


def test_blend_and_subset_follow_the_formula(tmp_path, capsys):
    write_strips(tmp_path / "ref", 4, 64, sd=40, seed=3)
    write_strips(tmp_path / "blur", 4, 64, sd=10, seed=4, repeats=1)
    (tmp_path / "subset.txt").write_text("# two of them\n5, 9\n")
    out = tmp_path / "o"
    rc, text = run(
        [
            tmp_path / "ref",
            "--strips",
            "6",
            "--blurry",
            tmp_path / "blur",
            "--out",
            out,
            "--metrics",
            "PixCorr",
            "--subset",
            tmp_path / "subset.txt",
            "--no-report",
        ],
        capsys,
    )
    assert (
        rc == 2 and "not divisible by --strips 6" in text and "blur" in text
    )  # blurry folders share the layout (K tiles)
    blur = tmp_path / "blur6"
    blur.mkdir()
    for i in (3, 5, 7, 9):
        s = np.asarray(Image.open(tmp_path / "blur" / f"{i:05d}.png"))
        Image.fromarray(np.concatenate([s[:, :64]] + [s[:, 64:]] * 5, axis=1)).save(blur / f"{i:05d}.png")
    rc, text = run(
        [
            tmp_path / "ref",
            "--strips",
            "6",
            "--blurry",
            blur,
            "--out",
            out,
            "--metrics",
            "PixCorr",
            "--subset",
            tmp_path / "subset.txt",
            "--no-report",
        ],
        capsys,
    )
    assert rc == 0, text
    doc = json.loads((out / "metrics.json").read_text())
    row = next(r for r in doc["rows"] if r["policy"] == "repeat0")
    assert row["images"] == [5, 9] and doc["protocol"]["blend"]["weight_refined"] == 0.75
    truth = np.stack([tiles_of(tmp_path / "ref", i, 0) for i in (5, 9)])
    mix = 0.75 * protocol_256(
        np.stack([tiles_of(tmp_path / "ref", i, 1) for i in (5, 9)])
    ) + 0.25 * protocol_256(np.stack([tiles_of(blur, i, 1) for i in (5, 9)]))
    t425 = TF.resize(protocol_256(truth), 425, interpolation=InterpolationMode.BILINEAR, antialias=False)
    m425 = TF.resize(mix, 425, interpolation=InterpolationMode.BILINEAR, antialias=False)
    expect = [
        np.corrcoef(a.reshape(-1).numpy(), b.reshape(-1).numpy())[0, 1]
        for a, b in zip(t425, m425, strict=True)
    ]
    np.testing.assert_allclose(row["per_image"]["PixCorr"], expect, atol=1e-4)


def _strip_dir(tmp_path, name, sizes):
    d = tmp_path / name
    d.mkdir()
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(d / f"{i:05d}.png")
    return d


@pytest.mark.parametrize("case", ["width", "mixed", "count", "unreadable", "naming", "no-truth"])
def test_bad_inputs_give_one_line_errors(tmp_path, capsys, case):
    good = _strip_dir(tmp_path, "good", [(120, 20)] * 3)
    args = {
        "width": [_strip_dir(tmp_path, "w", [(100, 20)] * 3), "--strips", "6"],
        "mixed": [_strip_dir(tmp_path, "m", [(120, 20), (120, 20), (60, 10)]), "--strips", "6"],
        "count": [good, _strip_dir(tmp_path, "c", [(120, 20)] * 2), "--strips", "6"],
        "unreadable": [good, "--strips", "6"],
        "naming": [good, "--strips", "6"],
        "no-truth": [good],
    }[case]
    if case == "unreadable":
        (good / "00003.png").write_bytes(b"not a png")
    if case == "naming":
        (good / "strip_a.png").write_bytes((good / "00000.png").read_bytes())
    rc, text = run([*args, "--out", tmp_path / "o", "--metrics", "PixCorr", "--no-report"], capsys)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:"), text
    expected = {
        "width": "not divisible by --strips 6",
        "mixed": "mixed image sizes",
        "count": "2 images here but 3",
        "unreadable": "cannot read image",
        "naming": "strip_a.png",
        "no-truth": "--truth",
    }[case]
    assert expected in lines[0]
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_all_tiles_as_repeats_against_a_truth_folder_with_the_mean_as_headline(tmp_path, capsys):
    truths = write_strips(tmp_path / "s", 3, 32, sd=20, seed=5)
    (tmp_path / "t").mkdir()
    for i, t in truths.items():
        Image.fromarray(t).save(tmp_path / "t" / f"{i:05d}.png")
    out = tmp_path / "o"
    rc, text = run(
        [
            tmp_path / "s",
            "--strips",
            "6",
            "--truth-tile",
            "none",
            "--truth",
            tmp_path / "t",
            "--policy",
            "mean",
            "--out",
            out,
            "--metrics",
            "SSIM",
        ],
        capsys,
    )
    assert rc == 0, text
    doc = json.loads((out / "metrics.json").read_text())
    rows = {r["policy"]: r for r in doc["rows"]}
    assert rows["repeat0"]["repeats"] == 6 and doc["protocol"]["headline_policy"] == "mean"
    # tile 0 is the stimulus itself: as repeat 0 its SSIM against the truth folder is 1
    np.testing.assert_allclose(rows["repeat0"]["per_image"]["SSIM"], 1.0, atol=1e-9)
    assert rows["mean"]["values"]["SSIM"] < 1.0
    assert (out / "report.html").is_file() and "s · 3 images × 6 repeats · mean" in (
        out / "report.html"
    ).read_text()


def test_truth_from_one_of_our_datasets_and_a_missing_index(tmp_path, capsys, generic_dir, arrays):
    images = arrays[0]
    rec = tmp_path / "rec"
    rec.mkdir()
    for i in (7, 8, 9):
        Image.fromarray(noisy(np.kron(images[i], np.ones((4, 4, 1), np.uint8)), 40, i)).save(
            rec / f"{i:05d}.png"
        )  # 32² from 8²
    rc, text = run(
        [rec, "--truth", generic_dir, "--out", tmp_path / "o", "--metrics", "PixCorr", "--no-report"], capsys
    )
    assert rc == 0, text
    row = next(
        r
        for r in json.loads((tmp_path / "o" / "metrics.json").read_text())["rows"]
        if r["policy"] == "repeat0"
    )
    recon = np.stack([np.asarray(Image.open(rec / f"{i:05d}.png")) for i in (7, 8, 9)])
    pix, _ = independent(images[[7, 8, 9]], recon)
    np.testing.assert_allclose(row["per_image"]["PixCorr"], pix, atol=2e-3)
    Image.fromarray(recon[0]).save(rec / "00012.png")  # the dataset holds 10 images
    rc, text = run(
        [rec, "--truth", generic_dir, "--out", tmp_path / "o2", "--metrics", "PixCorr", "--no-report"], capsys
    )
    assert rc == 2 and "1 of 4 reconstructed images have no truth, e.g. [12]" in text
