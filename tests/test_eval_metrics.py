"""Each metric against an independent computation on real photos (scikit-image's data images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import correlation as scipy_correlation
from skimage import data
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision import transforms

from neuraldiffuser.evaluation import metrics
from neuraldiffuser.evaluation.preprocess import to_protocol, to_tensor


def photo_set(size: int = 96) -> np.ndarray:
    """Six real photos, centre-cropped square and resized: uint8 (6, size, size, 3)."""
    from PIL import Image

    left, right, _ = data.stereo_motorcycle()
    out = []
    for im in (data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), left, right):
        h, w = im.shape[:2]
        s = min(h, w)
        crop = im[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC)))
    return np.stack(out)


def reference_chain(images: np.ndarray) -> torch.Tensor:
    """MindEye2's transforms written out with torchvision's Resize, as its notebook calls them."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = transforms.Resize((256, 256), antialias=False)(x)
    return transforms.Resize(425, interpolation=transforms.InterpolationMode.BILINEAR, antialias=False)(x)


@pytest.fixture(scope="module")
def photos():
    return photo_set()


def test_pixcorr_equals_numpy_corrcoef(photos):
    real, pred = photos, photos[[1, 2, 3, 4, 5, 0]]
    ours = metrics.pixcorr(to_protocol(real), to_protocol(pred))
    r, p = reference_chain(real).reshape(6, -1).numpy(), reference_chain(pred).reshape(6, -1).numpy()
    expected = np.array([np.corrcoef(r[i], p[i])[0][1] for i in range(6)])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    assert np.all(np.abs(expected) < 0.9)  # different photos are far from identical


def test_ssim_equals_skimage_with_reference_arguments(photos):
    real, pred = photos, photos[[0, 2, 1, 4, 3, 5]].copy()
    pred[0] = np.clip(pred[0].astype(int) + 40, 0, 255).astype(np.uint8)  # same photo, brighter
    ours = metrics.ssim(to_protocol(real), to_protocol(pred))
    rg = rgb2gray(reference_chain(real).permute(0, 2, 3, 1).numpy())
    pg = rgb2gray(reference_chain(pred).permute(0, 2, 3, 1).numpy())
    expected = [
        structural_similarity(
            pg[i], rg[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        for i in range(6)
    ]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    assert 0.5 < ours[0] < 1.0 and ours[5] == pytest.approx(1.0)


def test_identical_images_get_perfect_scores(photos):
    x = to_protocol(photos)
    np.testing.assert_allclose(metrics.pixcorr(x, x), 1.0, atol=1e-12)
    np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-12)
    feats = x.reshape(6, -1).numpy()
    np.testing.assert_array_equal(metrics.two_way_identification(feats, feats), np.ones(6))
    np.testing.assert_allclose(metrics.correlation_distance(feats, feats), 0.0, atol=1e-12)


def reference_two_way(reals: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """The reference's formula, literally: corrcoef of the stacked set, real-vs-pred block, r < diag."""
    n = len(reals)
    r = np.corrcoef(reals, preds)[:n, n:]
    return np.sum(r < np.diag(r), 0) / (n - 1)


def brute_force_two_way(reals: np.ndarray, preds: np.ndarray) -> np.ndarray:
    n = len(reals)
    out = np.zeros(n)
    for j in range(n):
        own = np.corrcoef(reals[j], preds[j])[0, 1]
        out[j] = sum(np.corrcoef(reals[i], preds[j])[0, 1] < own for i in range(n) if i != j) / (n - 1)
    return out


def test_two_way_matches_brute_force_loop_on_photo_features(photos):
    rng = np.random.default_rng(0)
    feats = to_tensor(photos).reshape(6, -1).numpy()[:, ::7]
    noisy = feats + rng.normal(0, 0.35, feats.shape)  # hard enough that some comparisons fail
    ours = metrics.two_way_identification(feats, noisy)
    np.testing.assert_allclose(ours, brute_force_two_way(feats, noisy), atol=1e-12)
    np.testing.assert_allclose(ours, reference_two_way(feats, noisy), atol=1e-12)
    assert 0 < ours.mean() <= 1


def test_two_way_on_a_shuffled_set_is_chance():
    """Crops of real photos vs the crops of *other* images: about 50% (exactly
    (N-2)/(2(N-1)) in expectation)."""
    rng = np.random.default_rng(1)
    imgs = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    crops = []
    for _ in range(120):
        im = imgs[rng.integers(len(imgs))]
        y, x = rng.integers(0, im.shape[0] - 32), rng.integers(0, im.shape[1] - 32)
        crops.append(im[y : y + 32, x : x + 32].astype(np.float64).ravel())
    real = np.stack(crops)
    perm = np.roll(np.arange(len(real)), 1)  # a derangement
    score = metrics.two_way_identification(real, real[perm]).mean()
    assert 0.42 < score < 0.58
    np.testing.assert_allclose(
        metrics.two_way_identification(real, real[perm]), reference_two_way(real, real[perm]), atol=1e-12
    )


def test_two_way_with_two_images_and_ties_behaves_as_the_reference():
    a, b, c = np.array([1.0, 2, 3, 4]), np.array([4.0, 1, 3, 2]), np.array([0.0, 5, 1, 1])
    # N = 2: each reconstruction scores 0 or 1, divided by N-1 = 1
    reals, preds = np.stack([a, b]), np.stack([a, a])
    np.testing.assert_array_equal(metrics.two_way_identification(reals, preds), [1.0, 0.0])
    np.testing.assert_array_equal(
        metrics.two_way_identification(reals, preds), reference_two_way(reals, preds)
    )
    # a tie (two identical ground truths) is a failure: strict '<'
    reals, preds = np.stack([a, a, c]), np.stack([a, b, c])
    ours = metrics.two_way_identification(reals, preds)
    np.testing.assert_array_equal(ours, reference_two_way(reals, preds))
    assert ours[0] == 0.5  # beats c, ties with the duplicate of a
    with pytest.raises(ValueError):
        metrics.two_way_identification(reals[:1], preds[:1])


def test_correlation_distance_equals_scipy(photos):
    feats = to_tensor(photos).reshape(6, -1).numpy().astype(np.float64)
    other = feats[[3, 4, 5, 0, 1, 2]]
    expected = [scipy_correlation(feats[i], other[i]) for i in range(6)]
    np.testing.assert_allclose(metrics.correlation_distance(feats, other), expected, atol=1e-12)


def test_repeat_consistency_is_mean_pairwise_ssim(photos):
    x = to_protocol(photos[:3])
    noisy = to_protocol(
        np.clip(
            photos[:3].astype(int) + np.random.default_rng(0).integers(-30, 30, photos[:3].shape), 0, 255
        ).astype(np.uint8)
    )
    from neuraldiffuser.evaluation.preprocess import grey, pixel_view

    g = np.stack([grey(pixel_view(x)), grey(pixel_view(noisy)), grey(pixel_view(x))])
    ours = metrics.repeat_consistency(g)
    pair = metrics.ssim_grey(g[0], g[1])
    np.testing.assert_allclose(
        ours, (pair + pair + 1.0) / 3, atol=1e-12
    )  # pairs (0,1), (0,2) = identical, (1,2)
    np.testing.assert_allclose(metrics.repeat_consistency(np.stack([g[0], g[0]])), 1.0)


def test_retrieval_matches_brute_force_and_chance():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(400, 32))
    brain = image + rng.normal(0, 2.0, image.shape)
    res = metrics.retrieval(brain, image, draws=3, subset=300, seed=3)
    draw_rng = np.random.RandomState(3)
    fwd, bwd = [], []
    for _ in range(3):
        idx = draw_rng.choice(400, 300, replace=False)
        b = brain[idx] / np.linalg.norm(brain[idx], axis=1, keepdims=True)
        im = image[idx] / np.linalg.norm(image[idx], axis=1, keepdims=True)
        fwd.append(np.mean([np.argmax(im @ b[k]) == k for k in range(300)]))  # brain k → which image
        bwd.append(np.mean([np.argmax(b @ im[k]) == k for k in range(300)]))  # image k → which brain
    assert res["forward"] == pytest.approx(np.mean(fwd)) and res["backward"] == pytest.approx(np.mean(bwd))
    assert 0.05 < res["forward"] < 0.95
    assert res["forward_ci95"][0] <= res["forward"] <= res["forward_ci95"][1]
    assert metrics.retrieval(image, image, draws=3)["backward"] == 1.0
    chance = metrics.retrieval(rng.normal(size=(300, 32)), image[:300], draws=3)
    assert chance["forward"] < 0.03


def test_protocol_resize_antialias_switch():
    """512² reconstructions shrink to 256² like torchvision 0.16 (no antialias) unless asked otherwise."""
    big = np.random.default_rng(0).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)
    t = torch.from_numpy(big).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_allclose(
        to_protocol(big).numpy(), transforms.Resize((256, 256), antialias=False)(t).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        to_protocol(big, antialias=True).numpy(),
        transforms.Resize((256, 256), antialias=True)(t).numpy(),
        atol=1e-6,
    )
    assert not np.allclose(to_protocol(big).numpy(), to_protocol(big, antialias=True).numpy(), atol=1e-3)
