"""The simulator's filter bank: V1-like feature maps of an image, computed with FFTs.

Channels (all non-negative, on a grid of half the image resolution, where pRFs pool them):
- luminance contrast energy: log-Gabor quadrature filters at 4 spatial frequencies × 4 orientations
  (the modulus of a one-sided, complex filter is the energy of a quadrature pair: Kay et al. 2008's
  Gabor-pyramid voxel model, reduced to energies);
- colour-opponent contrast energy: isotropic band-pass filters on the red–green and blue–yellow
  channels at 2 spatial frequencies (double-opponent-like, weakly oriented at the voxel level);
- local mean luminance and colour, half-wave rectified into ± channels (L+, L−, RG+, RG−, BY+, BY−).
The images are treated as sRGB in [0, 1]; L = mean(R, G, B), RG = R − G, BY = B − (R + G) / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

SF_CPI = (2.5, 5.0, 10.0, 20.0)  # luminance bands, cycles per image
COLOR_SF_CPI = (4.0, 8.0)
ORIENTATIONS_DEG = (0.0, 45.0, 90.0, 135.0)
SIGMA_LOG_SF = 0.45  # ~1.5-octave full bandwidth
SIGMA_ORI = np.deg2rad(26.0)
SIGNED = ("L+", "L-", "RG+", "RG-", "BY+", "BY-")


def channel_names() -> list[str]:
    lum = [f"energy_sf{sf:g}_ori{o:g}" for sf in SF_CPI for o in ORIENTATIONS_DEG]
    col = [f"{c}_energy_sf{sf:g}" for c in ("RG", "BY") for sf in COLOR_SF_CPI]
    return lum + col + list(SIGNED)


N_CHANNELS = len(SF_CPI) * len(ORIENTATIONS_DEG) + 2 * len(COLOR_SF_CPI) + len(SIGNED)


def _freq_grid(n: int):
    f = sfft.fftfreq(n, 1.0 / n)  # cycles per image
    fx, fy = np.meshgrid(f, f)
    return np.hypot(fx, fy), np.arctan2(fy, fx)


def log_gabor(n: int, sf: float, ori_deg: float | None) -> np.ndarray:
    """Frequency response on an n×n FFT grid; one-sided (complex output) when oriented."""
    rho, phi = _freq_grid(n)
    with np.errstate(divide="ignore"):
        radial = np.exp(-(np.log(np.maximum(rho, 1e-9) / sf) ** 2) / (2 * SIGMA_LOG_SF**2))
    radial[0, 0] = 0.0
    if ori_deg is None:
        return radial
    d = np.angle(np.exp(1j * (phi - np.deg2rad(ori_deg))))
    return radial * np.exp(-(d**2) / (2 * SIGMA_ORI**2)) * 2.0  # x2: one side carries all the energy


def _gaussian_tf(n: int, sigma_px: float) -> np.ndarray:
    rho, _ = _freq_grid(n)
    return np.exp(-2 * (np.pi * rho / n * sigma_px) ** 2)


def block_mean(m: np.ndarray) -> np.ndarray:
    """2×2 block average over the last two axes (slicing is much faster than a reshaped mean)."""
    return 0.25 * (m[..., 0::2, 0::2] + m[..., 1::2, 0::2] + m[..., 0::2, 1::2] + m[..., 1::2, 1::2])


@dataclass
class FilterBank:
    """Frequency responses for one image resolution (built once, applied to batches)."""

    resolution: int

    def __post_init__(self):
        n, h = self.resolution, self.resolution // 2
        if n % 2 or n < 16:
            raise ValueError(f"resolution must be even and >= 16, got {n}")
        self.grid = h
        fits_half = [sf * np.exp(2 * SIGMA_LOG_SF) < h / 2 for sf in SF_CPI]  # low bands fit on the half grid
        self.low = np.array(
            [
                log_gabor(h, sf, o)
                for sf, ok in zip(SF_CPI, fits_half, strict=True)
                if ok
                for o in ORIENTATIONS_DEG
            ],
            dtype=np.complex64,
        )
        high = [(sf, o) for sf, ok in zip(SF_CPI, fits_half, strict=True) if not ok for o in ORIENTATIONS_DEG]
        self.high_rows, self.high_cols, self.high = self._demodulated(high)
        self.color = np.array([log_gabor(h, sf, None) for sf in COLOR_SF_CPI], dtype=np.float32)
        self.smooth = _gaussian_tf(h, 1.0).astype(np.float32)

    def _demodulated(self, bands):
        """Oriented high bands, shifted to baseband and cropped to the half grid.

        The modulus of a one-sided band-pass response is unchanged by a frequency shift, so the band
        around its centre frequency can be cropped to an h×h spectrum and inverted on the half grid:
        the energy envelope comes out sampled there directly, at a quarter of the full-grid cost.
        A half-pixel phase ramp aligns the samples with the centres of the 2×2 blocks.
        """
        n, h = self.resolution, self.grid
        offsets = np.rint(sfft.fftfreq(h, 1.0 / h)).astype(int)
        rows, cols, filters = [], [], []
        for sf, o in bands:
            full = log_gabor(n, sf, o)
            kx, ky = int(round(sf * np.cos(np.deg2rad(o)))), int(round(sf * np.sin(np.deg2rad(o))))
            r, c = (ky + offsets) % n, (kx + offsets) % n
            fy, fx = sfft.fftfreq(n, 1.0 / n)[r][:, None], sfft.fftfreq(n, 1.0 / n)[c][None, :]
            ramp = np.exp(2j * np.pi * 0.5 * (fx + fy) / n)
            rows.append(r)
            cols.append(c)
            filters.append(full[np.ix_(r, c)] * ramp)
        return np.array(rows), np.array(cols), np.array(filters, dtype=np.complex64)

    def maps(self, images: np.ndarray, chunk: int = 128) -> np.ndarray:
        """(n, N_CHANNELS, res/2, res/2) float32 feature maps of uint8 (n, res, res, 3) images."""
        if images.ndim != 4 or images.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(
                f"expected images of shape (n, {self.resolution}, {self.resolution}, 3), got {images.shape}"
            )
        out = np.empty((len(images), N_CHANNELS, self.grid, self.grid), dtype=np.float32)
        for start in range(0, len(images), chunk):
            out[start : start + chunk] = self._maps(images[start : start + chunk])
        return out

    def _maps(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32) / 255.0
        lum = x.mean(-1)
        opp = np.stack([lum, x[..., 0] - x[..., 1], x[..., 2] - 0.5 * (x[..., 0] + x[..., 1])], axis=1)
        half = block_mean(opp)
        n_col = 2 * len(self.color)
        spec_half = sfft.fft2(half)
        spec_full = sfft.fft2(lum)
        low = np.abs(sfft.ifft2(spec_half[:, :1] * self.low))
        crops = spec_full[:, self.high_rows[:, :, None], self.high_cols[:, None, :]]  # (n, bands, h, h)
        high = np.abs(sfft.ifft2(crops * self.high)) * 0.25  # the envelope, sampled on the half grid
        col = sfft.ifft2(spec_half[:, 1:, None] * self.color).real.reshape(
            len(x), n_col, self.grid, self.grid
        )
        col = np.sqrt(np.maximum(sfft.ifft2(sfft.fft2(col**2) * self.smooth).real, 0))
        local = sfft.ifft2(spec_half * self.smooth).real
        local[:, 0] -= 0.5
        signed = np.stack([np.maximum(local, 0), np.maximum(-local, 0)], axis=2).reshape(
            len(x), 6, self.grid, self.grid
        )
        return np.concatenate([low, high, col, signed], axis=1).astype(np.float32)
