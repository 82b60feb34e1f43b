"""
From a demo run to images with a pipeline
=========================================

The demo (``neuraldiffuser demo``) trains decoders on the in-silico NSD. Its run folder loads as a
:class:`neuraldiffuser.NeuralDiffuserPipeline`, which decodes betas into the diffusion targets
(``pipe.decode``) and samples images (``pipe(...)``). ``save_pretrained`` writes a self-contained folder
(decoders, voxel scaler, z statistics, a copy of the zoo, sampler settings and a model card) that
loads on another machine.

``NEURALDIFFUSER_EXAMPLE_SIZE=small`` trains a tiny demo in seconds (the test suite runs it so).
"""

# %%
# Train (or reuse) the demo's decoders
# ------------------------------------
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from neuraldiffuser import SMALL_DEMO, NeuralDiffuserPipeline, open_dataset, train_demo_decoders

SMALL = os.environ.get("NEURALDIFFUSER_EXAMPLE_SIZE") == "small"
OUT = Path(os.environ.get("NEURALDIFFUSER_EXAMPLE_OUT", "example_output"))

run = train_demo_decoders(OUT / "demo", overrides=SMALL_DEMO if SMALL else None)

# %%
# Load the run as a pipeline
# --------------------------
pipe = NeuralDiffuserPipeline.from_pretrained(run)
print(pipe)
ds = open_dataset(pipe.config.data.path)
subject = ds.subject(pipe.subject)
test = subject.test_set(repeats=3)
betas = subject.test_betas(test)  # raw betas, repeats averaged: (n_test, n_voxels)

# %%
# Decode, then sample
# -------------------
# ``decode`` gives the targets; ``pipe(betas)`` does both steps. Row i is seeded with seed + image index, so
# an image comes out the same whichever rows it is decoded with.
targets = pipe.decode(betas)
print({k: v.shape for k, v in targets.items()})
n = min(6, len(betas))
images = pipe.generate({k: v[:n] for k, v in targets.items()}, images=test.images[:n], seed=0)

fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
for i in range(n):
    axes[0, i].imshow(ds.images.get([int(test.images[i])])[0])
    axes[1, i].imshow(images[i, 0])
for ax in axes.ravel():
    ax.axis("off")
OUT.mkdir(parents=True, exist_ok=True)
fig.savefig(OUT / "demo_pipeline.png", dpi=100, bbox_inches="tight")

# %%
# Save a portable pipeline and load it back
# -----------------------------------------
# The z of a call are matched to the training statistics together (``decode.z_match``), so compare the same
# call on both pipelines.
folder = pipe.save_pretrained(OUT / "demo_pipeline")
print((folder / "README.md").read_text().splitlines()[5])
again = NeuralDiffuserPipeline.from_pretrained(folder)
before = pipe(betas[:3], images=test.images[:3], seed=0)
same = np.array_equal(again(betas[:3], images=test.images[:3], seed=0), before)
print(f"reloaded pipeline gives identical images: {same}")
assert same
