"""
Reconstruct images from your own arrays
=======================================

Start from arrays in memory (stimulus images, their captions, one subject's fMRI betas) and get
reconstructions without writing a dataset by hand:

1. compute the diffusion targets of the stimuli (:func:`neuraldiffuser.extract_from_arrays`);
2. fit the ridge baseline scikit-learn style (``RidgeDecoder().fit(X, Y)``);
3. train the neural decoders on the arrays (:func:`neuraldiffuser.train_from_arrays`, the
   ``train`` code path);
4. load the run as a pipeline and reconstruct the test images;
5. score the reconstructions (:func:`neuraldiffuser.score_images`).

The in-silico NSD stands in for your data. ``NEURALDIFFUSER_EXAMPLE_SIZE=small`` makes every step tiny
(the test suite runs it so); ``NEURALDIFFUSER_EXAMPLE_OUT`` chooses where files go.
"""

# %%
# Your arrays
# -----------
# ``stimuli`` (N, H, W, 3) uint8 and one caption list per image; ``betas`` (n_trials, n_voxels) float32 with
# ``image_of_row`` (n_trials,) saying which stimulus each trial showed; ``test_betas`` (n_test, n_voxels), the
# repeats of each test image averaged.
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from neuraldiffuser import (
    NeuralDiffuserPipeline,
    RidgeDecoder,
    extract_from_arrays,
    load_config,
    open_dataset,
    score_images,
    simulate_dataset,
    train_from_arrays,
)

SMALL = os.environ.get("NEURALDIFFUSER_EXAMPLE_SIZE") == "small"
OUT = Path(os.environ.get("NEURALDIFFUSER_EXAMPLE_OUT", "example_output")) / "own_arrays"

size = {"n_images": 40, "test_images": 6, "sessions": 1, "voxels": [80, 120]} if SMALL else {}
ds = open_dataset(simulate_dataset(OUT / "data", preset="small", subjects=1, **size))
subject = ds.subject("subj01")
stimuli = ds.images.get(np.arange(len(ds.images)))
captions = [ds.captions_of(i) for i in range(len(stimuli))]
rows = subject.train_rows()
betas, image_of_row = subject.read(rows), subject.image_of_rows(rows)
test = subject.test_set(repeats=3)
test_betas = subject.test_betas(test)
print(f"{len(stimuli)} stimuli, betas {betas.shape}, test betas {test_betas.shape}")

# %%
# Targets of the stimuli
# ----------------------
# z (the VAE latent), c (the caption's text tokens) and g (low-level CLIP features) from the shipped mini zoo.
targets = extract_from_arrays(stimuli, captions)
print({k: v.shape for k, v in targets.items()})

# %%
# The ridge baseline, scikit-learn style
# --------------------------------------
# Penalty chosen per target on held-out training images (rows of one image stay together).
mean, std = betas.mean(0), betas.std(0) + 1e-6
ridge = RidgeDecoder().fit((betas - mean) / std, targets["z"][image_of_row], images=image_of_row)
z_ridge = ridge.predict((test_betas - mean) / std)
z_true = targets["z"][test.images]
r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(z_ridge, z_true, strict=True)]
print(f"ridge: alpha {ridge.chosen['y']:g}, test z correlation {np.mean(r):.2f}")

# %%
# Train the neural decoders on the arrays
# ---------------------------------------
tiny = {
    "decoder": {"hidden": 32, "blocks": 1},
    "train": {"finetune_epochs": 2, "epoch_samples": 64, "batch_size": 16},
    "sampler": {"steps": 4, "repeats": 1},
}
config = load_config("mini", overrides=tiny if SMALL else {"sampler": {"repeats": 2}})
run = train_from_arrays(
    betas, targets, OUT / "run", images=image_of_row, stimuli=stimuli, config=config, overwrite=True
)

# %%
# Reconstruct and score
# ---------------------
pipe = NeuralDiffuserPipeline.from_pretrained(run)
images = pipe(test_betas, images=test.images)  # (n_test, repeats, H, W, 3) uint8
scores = score_images(stimuli[test.images], images[:, 0])
print(
    f"PixCorr {scores['PixCorr'].mean():.3f}, SSIM {scores['SSIM'].mean():.3f} over {len(images)} test images"
)

n = min(6, len(images))
fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
for i in range(n):
    axes[0, i].imshow(stimuli[test.images[i]])
    axes[1, i].imshow(images[i, 0])
    axes[0, i].set_title(f"#{test.images[i]}", fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
axes[0, 0].text(-0.1, 0.5, "seen", transform=axes[0, 0].transAxes, ha="right", va="center")
axes[1, 0].text(-0.1, 0.5, "reconstructed", transform=axes[1, 0].transAxes, ha="right", va="center")
fig.savefig(OUT / "reconstructions.png", dpi=100, bbox_inches="tight")
print(f"figure → {OUT / 'reconstructions.png'}")
