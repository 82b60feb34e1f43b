"""
How much guidance? A κ × η sweep
================================

NeuralDiffuser steers the first η fraction of the denoising steps towards the decoded low-level features g
with strength κ. This example decodes the test set once, samples it at every (κ, η) of a grid, scores each
setting with PixCorr and SSIM, and plots the two as heat maps. (Choose settings on held-out training images,
``decode --holdout``, not on the test set: benchmarks/kappa_validation.py.)

``NEURALDIFFUSER_EXAMPLE_SIZE=small`` sweeps a 2 × 2 grid of a tiny demo (the test suite runs it so).
"""

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from neuraldiffuser import SMALL_DEMO, NeuralDiffuserPipeline, open_dataset, score_images, train_demo_decoders

SMALL = os.environ.get("NEURALDIFFUSER_EXAMPLE_SIZE") == "small"
OUT = Path(os.environ.get("NEURALDIFFUSER_EXAMPLE_OUT", "example_output"))
KAPPAS = [30.0, 300.0] if SMALL else [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0]
ETAS = [0.2, 0.6] if SMALL else [0.2, 0.4, 0.6, 1.0]

pipe = NeuralDiffuserPipeline.from_pretrained(
    train_demo_decoders(OUT / "demo", overrides=SMALL_DEMO if SMALL else None)
)
ds = open_dataset(pipe.config.data.path)
subject = ds.subject(pipe.subject)
test = subject.test_set(repeats=3)
n = 4 if SMALL else len(test.images)
stimuli = ds.images.get(test.images[:n])

# %%
# Decode once, sample each setting
# --------------------------------
targets = {k: v[:n] for k, v in pipe.decode(subject.test_betas(test)).items()}
unguided = score_images(stimuli, pipe.generate(targets, images=test.images[:n], kappa=0, repeats=1)[:, 0])
pixcorr = np.zeros((len(KAPPAS), len(ETAS)))
ssim = np.zeros_like(pixcorr)
for i, kappa in enumerate(KAPPAS):
    for j, eta in enumerate(ETAS):
        images = pipe.generate(targets, images=test.images[:n], kappa=kappa, eta=eta, repeats=1)
        s = score_images(stimuli, images[:, 0])
        pixcorr[i, j], ssim[i, j] = s["PixCorr"].mean(), s["SSIM"].mean()
        print(f"kappa {kappa:g}, eta {eta:g}: PixCorr {pixcorr[i, j]:.3f}, SSIM {ssim[i, j]:.3f}")
print(f"unguided: PixCorr {unguided['PixCorr'].mean():.3f}, SSIM {unguided['SSIM'].mean():.3f}")

# %%
# Plot
# ----
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, values, name, base in (
    (axes[0], pixcorr, "PixCorr", unguided["PixCorr"].mean()),
    (axes[1], ssim, "SSIM", unguided["SSIM"].mean()),
):
    im = ax.imshow(
        values - base, cmap="RdBu_r", vmin=-abs(values - base).max(), vmax=abs(values - base).max()
    )
    ax.set_xticks(range(len(ETAS)), [f"{e:g}" for e in ETAS])
    ax.set_yticks(range(len(KAPPAS)), [f"{k:g}" for k in KAPPAS])
    ax.set_xlabel("η (guided fraction of steps)")
    ax.set_ylabel("κ (guidance scale)")
    ax.set_title(f"{name}, guided − unguided")
    fig.colorbar(im, ax=ax)
OUT.mkdir(parents=True, exist_ok=True)
fig.savefig(OUT / "kappa_eta_sweep.png", dpi=100, bbox_inches="tight")
print(f"figure → {OUT / 'kappa_eta_sweep.png'}")
