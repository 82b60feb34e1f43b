"""A NeuroPictor-style model (ECCV 2024; method notes §8) on our data and stacks.

``model`` (fMRI encoder, high- and low-level networks), ``controlnet`` (the ControlNet branch and the
trainable whole), ``train`` (diffusion-loss stages), ``runner`` (train and decode a run), ``pipeline``
(DDIM + CFG inference and reconstruct).
"""
