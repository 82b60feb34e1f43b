"""Encoding-model parts against known answers: pRF integration, filter-bank selectivity, ventral read-out."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft
from scipy.stats import norm

from neuraldiffuser.simulate import features as fb
from neuraldiffuser.simulate.encoding import FIELD_DEG, prf_weights


def _com(w, grid):
    centres = (np.arange(grid) + 0.5) / grid * FIELD_DEG - FIELD_DEG / 2
    w = w.reshape(grid, grid)
    return (w.sum(0) * centres).sum() / w.sum(), (w.sum(1) * centres[::-1]).sum() / w.sum()  # x right, y up


def test_prf_weights_integrate_to_one_and_sit_where_they_should():
    w = prf_weights(
        np.array([0.0, 2.0, 4.2, 0.3]),
        np.array([0.0, 1.0, 0.0, -2.5]),
        np.array([0.5, 0.4, 0.5, 0.05]),
        grid=32,
    )
    assert w.shape == (4, 32 * 32) and w.dtype == np.float32
    assert w[0].sum() == pytest.approx(1.0, abs=1e-4)
    assert w[2].sum() == pytest.approx(0.5, abs=1e-3)  # centred on the right edge: half of it sees the image
    assert _com(w[1], 32) == pytest.approx((2.0, 1.0), abs=0.02)
    # a pRF smaller than a cell: its mass is the Gaussian integral over the cells it overlaps
    cell = FIELD_DEG / 32
    row, col = int((FIELD_DEG / 2 + 2.5) // cell), int((FIELD_DEG / 2 + 0.3) // cell)
    x0 = col * cell - FIELD_DEG / 2
    expected_x = norm.cdf((x0 + cell - 0.3) / 0.05) - norm.cdf((x0 - 0.3) / 0.05)
    y_top = FIELD_DEG / 2 - row * cell
    expected_y = norm.cdf((y_top + 2.5) / 0.05) - norm.cdf((y_top - cell + 2.5) / 0.05)
    assert w[3].reshape(32, 32)[row, col] == pytest.approx(expected_x * expected_y, abs=1e-5)
    assert w[3].sum() == pytest.approx(1.0, abs=1e-4) and np.count_nonzero(w[3] > 1e-3) <= 6


def _grating(cpi: float, along_x: bool, size: int = 64) -> np.ndarray:
    t = (np.arange(size) + 0.5) / size
    wave = 0.5 + 0.4 * np.sin(2 * np.pi * cpi * t)
    img = np.broadcast_to(wave[None, :] if along_x else wave[:, None], (size, size))
    return np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=-1)


@pytest.mark.parametrize("cpi", [5.0, 10.0, 20.0])
def test_filter_bank_is_tuned_to_orientation_and_spatial_frequency(cpi):
    bank = fb.FilterBank(64)
    names = fb.channel_names()
    maps = bank.maps(np.stack([_grating(cpi, True), _grating(cpi, False)])).mean(axis=(2, 3))
    lum = maps[:, : len(fb.SF_CPI) * len(fb.ORIENTATIONS_DEG)]
    assert names[int(lum[0].argmax())] == f"energy_sf{cpi:g}_ori0"  # varies along x: frequency direction 0°
    assert names[int(lum[1].argmax())] == f"energy_sf{cpi:g}_ori90"
    assert np.allclose(maps[:, names.index("RG+") :], 0, atol=1e-3)  # grey gratings: no colour signal


def test_colour_channels_have_the_right_sign():
    bank = fb.FilterBank(64)
    names = fb.channel_names()
    red, green = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    red[..., 0], green[..., 1] = 200, 200
    maps = bank.maps(np.stack([red, green])).mean(axis=(2, 3))
    assert maps[0, names.index("RG+")] > 0.5 and maps[0, names.index("RG-")] == 0
    assert maps[1, names.index("RG-")] > 0.5 and maps[1, names.index("RG+")] == 0
    assert maps[:, names.index("energy_sf10_ori0")].max() < 1e-3  # uniform fields have no contrast energy


def test_demodulated_high_bands_match_the_full_resolution_filter():
    from neuraldiffuser.simulate.scenes import generate_scenes

    images = generate_scenes(24, 7).images
    bank = fb.FilterBank(64)
    maps = bank.maps(images)
    lum = images.astype(np.float32).mean(-1) / 255
    names = fb.channel_names()
    for sf, ori in [(10.0, 45.0), (20.0, 0.0), (20.0, 135.0)]:
        full = fb.block_mean(np.abs(sfft.ifft2(sfft.fft2(lum) * fb.log_gabor(64, sf, ori))))
        ours = maps[:, names.index(f"energy_sf{sf:g}_ori{ori:g}")]
        assert np.corrcoef(full.ravel(), ours.ravel())[0, 1] > 0.98
        assert ours.mean() == pytest.approx(full.mean(), rel=0.05)


def test_shipped_ventral_network_reports_scene_attributes():
    from neuraldiffuser.simulate.scenes import generate_scenes
    from neuraldiffuser.simulate.semantic import ATTRIBUTES, GROUPS, attribute_vectors
    from neuraldiffuser.simulate.ventral import Ventral

    scenes = generate_scenes(400, 2024)  # scenes the network never saw (it trained on seed 1234)
    pred, truth = Ventral().semantic(scenes.images), attribute_vectors(scenes.records)
    assert pred.shape == truth.shape == (400, len(ATTRIBUTES)) and pred.min() >= 0 and pred.max() <= 1
    single = np.array([len(r["objects"]) == 1 for r in scenes.records])

    def top1(names, rows):
        cols = [ATTRIBUTES.index(a) for a in names]
        return (pred[rows][:, cols].argmax(1) == truth[rows][:, cols].argmax(1)).mean()

    everything = np.ones(len(scenes), bool)
    assert top1(GROUPS["shape"], single) > 0.6  # chance 0.1
    assert top1(GROUPS["color"], single) > 0.9  # chance 0.09
    assert top1(GROUPS["count"], everything) > 0.9  # chance 0.4
    assert top1(GROUPS["background"][:5], everything) > 0.9  # background kind, chance 0.2
    assert top1(GROUPS["background"][5:], everything) > 0.9  # background colour, chance 0.08
