from __future__ import annotations

from pydantic import Field

from ..base import Section


class DecodeConfig(Section):
    """Decoding the test set: repeat handling, prior sampling, z distribution matching."""

    prior_steps: int = Field(20, ge=1)
    """DDIM steps of the prior (of its prior_timesteps)."""
    prior_eta: float = Field(1.0, ge=0)
    """DDIM η (1.0 = the reference's stochastic sampler; 0 = deterministic)."""
    prior_samples: int = Field(1, ge=1)
    """Prior samples drawn per test image and averaged (1 = a single sample, as the reference)."""
    prior_cond_scale: float = Field(1.0, ge=0)
    """Classifier-free guidance scale of the prior (1.0 = none, as the reference)."""
    use_prior: bool = True
    """Sample the prior; False decodes c and g with the linear head's tokens."""
    z_match: bool = True
    """Distribution matching of z: z-score the test predictions per dimension, then map them onto the mean and
    std of the training images' true z (method notes §4.6)."""
    z_ridge_weight: float = Field(0.0, ge=0, le=1)
    """z = (1 − w) · the neural decoder's z + w · the run's ridge baseline's z, before z_match (0 = the neural
    z alone). An average of two decent decoders errs less than either; the `small` flow chooses w on held-out
    training images (sampling/validate.py). Needs the run's ridge (train.ridge: true)."""
    batch_size: int = Field(64, ge=1)
    """Test images per batch."""
    seed: int | None = None
    """Seed of the prior samples (None = the top-level seed)."""
    ridge: bool = False
    """Also write the ridge baseline's decoded targets (decoded_ridge.hdf5 beside the output)."""
