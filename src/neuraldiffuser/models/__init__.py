"""fMRI decoders: per-subject voxel adapters, residual-MLP backbone, token heads with a diffusion prior,
the low-level z decoder, and the closed-form ridge baseline. Heavy imports live in the submodules."""
