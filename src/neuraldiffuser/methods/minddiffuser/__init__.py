"""MindDiffuser (ACM MM 2023) as its released code implements it (method notes §7).

``ridge`` (voxel-selection ridge), ``masks`` (remain-rate feature masks), ``decoders`` (fit and decode),
``sampler`` (stage 1 img2img and stage 2 back-propagation refinement), ``method`` (reconstruct).
"""
