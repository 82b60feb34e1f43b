"""neuraldiffuser: reconstruct seen images from fMRI with guided diffusion.

Stages live in sub-packages (data, simulate, zoo, targets, models, training, sampling,
methods, evaluation, report); importing this package loads none of them.
"""

__version__ = "0.1.0"
