"""Simulator presets: NSD's design at three sizes, and the encoding model's literature-based constants.

NSD (Allen et al. 2022): 8 subjects, 30–40 sessions of 750 trials, ~10,000 images per subject each
shown up to 3 times, of which the shared1000 are seen by everyone; 12,682–17,907 nsdgeneral voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError

ROI_NAMES = ("V1", "V2", "V3", "hV4", "LO", "VO", "PPA", "IPS")
RETINOTOPIC = ("V1", "V2", "V3", "hV4")
HIGHER = ("LO", "VO", "PPA", "IPS")

# Share of a subject's voxels per ROI (before a per-subject jitter); early cortex dominates nsdgeneral.
ROI_FRACTIONS = {
    "V1": 0.20,
    "V2": 0.18,
    "V3": 0.15,
    "hV4": 0.08,
    "LO": 0.12,
    "VO": 0.08,
    "PPA": 0.10,
    "IPS": 0.09,
}

# Median single-trial noise ceiling (% of variance) per ROI, for the raw betas including session drift.
# NSD's NC = 100·ncsnr²/(ncsnr² + 1/n) for n averaged trials (NSD data manual; Allen et al. 2022).
# With GLMsingle betas (b3), early visual cortex reaches the highest single-trial ceilings and
# higher-level areas lower ones; these medians sit in that range (see docs/simulator.md).
NOISE_CEILING = {
    "V1": 0.36,
    "V2": 0.34,
    "V3": 0.30,
    "hV4": 0.26,
    "LO": 0.22,
    "VO": 0.18,
    "PPA": 0.16,
    "IPS": 0.12,
}
NC_SPREAD = 0.6  # per-voxel NC is logit-normal around the ROI median (SD of the logit)
DRIFT_FRACTION = 0.2  # share of the noise variance that is session drift (offset + linear trend)
SHARED_NOISE_FRACTION = 0.15  # share of the trial noise shared across voxels (a few latent factors)

# pRF size σ = a + b·eccentricity (degrees), growing with eccentricity and along the hierarchy
# (Dumoulin & Wandell 2008; Kay et al. 2013; Wandell & Winawer 2015).
PRF_SIZE = {"V1": (0.20, 0.10), "V2": (0.25, 0.15), "V3": (0.30, 0.22), "hV4": (0.50, 0.35)}
# Compressive spatial summation exponent (Kay et al. 2013: compression grows from V1 to hV4 and beyond).
CSS_EXPONENT = {
    "V1": 0.50,
    "V2": 0.42,
    "V3": 0.36,
    "hV4": 0.30,
    "LO": 0.30,
    "VO": 0.30,
    "PPA": 0.30,
    "IPS": 0.30,
}
# Preferred spatial frequency falls with eccentricity and along the hierarchy (Henriksson et al. 2008).
SF_AREA_FACTOR = {"V1": 1.0, "V2": 1.4, "V3": 1.8, "hV4": 2.5}
# Higher areas: weight of the (large-pRF) retinotopic part and emphasis of attribute groups.
HIGHER_MIX = {"LO": 0.25, "VO": 0.30, "PPA": 0.20, "IPS": 0.30}
SEMANTIC_EMPHASIS = {  # object shape (LO: Malach 1995), colour (VO: Brewer 2005), scene layout (PPA: Epstein
    # & Kanwisher 1998), numerosity and position (IPS: Harvey et al. 2013)
    "LO": {"shape": 1.0, "color": 0.25, "count": 0.3, "layout": 0.15, "size": 0.5, "background": 0.2},
    "VO": {"shape": 0.3, "color": 1.0, "count": 0.1, "layout": 0.1, "size": 0.2, "background": 0.5},
    "PPA": {"shape": 0.15, "color": 0.2, "count": 0.3, "layout": 0.5, "size": 0.3, "background": 1.0},
    "IPS": {"shape": 0.1, "color": 0.1, "count": 1.0, "layout": 0.6, "size": 0.5, "background": 0.1},
}


@dataclass(frozen=True)
class Preset:
    """Sizes of one simulated experiment."""

    name: str
    subjects: int
    test_images: int  # shared, each seen `test_repeats` times by every subject
    train_images: int  # per subject, unique to that subject
    train_repeat_probs: tuple[float, float, float]  # P(seen 1, 2, 3 times)
    sessions: int
    voxels: tuple[int, int]  # each subject draws its count in [min, max]
    image_size: int = 64
    test_repeats: int = 3


PRESETS = {
    "small": Preset(
        "small",
        subjects=2,
        test_images=40,
        train_images=360,
        train_repeat_probs=(0.2, 0.3, 0.5),
        sessions=4,
        voxels=(400, 600),
    ),
    "mini": Preset(
        "mini",
        subjects=4,
        test_images=100,
        train_images=1000,
        train_repeat_probs=(0.2, 0.3, 0.5),
        sessions=8,
        voxels=(1500, 3000),
    ),
    "nsd-like": Preset(
        "nsd-like",
        subjects=8,
        test_images=1000,
        train_images=9000,
        train_repeat_probs=(0.0, 0.0, 1.0),
        sessions=40,
        voxels=(12682, 17907),
    ),
}


def resolve_preset(cfg) -> Preset:
    """The preset named by a ``SimulateConfig``, with its explicit overrides applied and checked."""
    if cfg.preset not in PRESETS:
        raise ConfigError(
            f"simulate.preset '{cfg.preset}' has no subjects",
            fix=f"use one of {', '.join(PRESETS)} (or 'scenes' for images only)",
        )
    p = PRESETS[cfg.preset]
    changes = {
        k: v
        for k, v in {
            "subjects": cfg.subjects,
            "image_size": cfg.image_size,
            "train_images": cfg.n_images,
            "test_images": cfg.test_images,
            "sessions": cfg.sessions,
        }.items()
        if v is not None
    }
    if cfg.voxels is not None:
        if len(cfg.voxels) != 2 or not 0 < cfg.voxels[0] <= cfg.voxels[1]:
            raise ConfigError(f"simulate.voxels must be [min, max] with 0 < min <= max, got {cfg.voxels}")
        changes["voxels"] = tuple(cfg.voxels)
    p = replace(p, **changes)
    checks = [
        (p.subjects >= 1, "subjects >= 1"),
        (p.test_images >= 2, "test_images >= 2"),
        (p.train_images >= 10, "n_images (training images per subject) >= 10"),
        (p.sessions >= 1, "sessions >= 1"),
        (p.voxels[0] >= 2 * len(ROI_NAMES), f"voxels >= {2 * len(ROI_NAMES)}"),
        (p.image_size % 2 == 0 and p.image_size >= 16, "image_size even and >= 16"),
    ]
    for ok, what in checks:
        if not ok:
            raise ConfigError(f"invalid simulator size: need {what}", where=f"simulate (preset {p.name})")
    return p
