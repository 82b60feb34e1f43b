"""``reconstruct --method ridge``: the closed-form ridge baseline's decoded targets through
NeuralDiffuser's sampler.

The ridge baseline (``train.ridge``, ``decode --ridge`` → decoded_ridge.hdf5) swaps NeuralDiffuser's
decoders for one linear map per target and keeps everything downstream identical: the same guided
sampler with the same κ × η settings. Its own method name keeps its folders (RECON/ridge/<setting>) apart,
so the table shows what the decoders, rather than the sampler, contribute.
"""

from __future__ import annotations

from ..sampling.methods import NeuralDiffuserMethod


class RidgeMethod(NeuralDiffuserMethod):
    name = "ridge"
