"""
Score a folder of reconstructions
=================================

Reconstructions made by any tool, saved as PNG files named after the stimulus they reconstruct
(``00012.png`` for image 12), scored against the stimuli with the protocol's model-free metrics: PixCorr and
SSIM after MindEye2's resize chain (256 px, then 425 px). For the full protocol (AlexNet, Inception, CLIP,
EfficientNet, SwAV, brain correlation) on a ``reconstruct`` folder, run ``neuraldiffuser evaluate``.

Here the folder is filled from the demo's pipeline. ``NEURALDIFFUSER_EXAMPLE_SIZE=small`` uses a tiny demo
(the test suite runs it so).
"""

# %%
# A folder of PNGs
# ----------------
import os
from pathlib import Path

import numpy as np
from PIL import Image

from neuraldiffuser import SMALL_DEMO, NeuralDiffuserPipeline, open_dataset, score_images, train_demo_decoders

SMALL = os.environ.get("NEURALDIFFUSER_EXAMPLE_SIZE") == "small"
OUT = Path(os.environ.get("NEURALDIFFUSER_EXAMPLE_OUT", "example_output"))
folder = OUT / "my_reconstructions"
folder.mkdir(parents=True, exist_ok=True)

pipe = NeuralDiffuserPipeline.from_pretrained(
    train_demo_decoders(OUT / "demo", overrides=SMALL_DEMO if SMALL else None)
)
ds = open_dataset(pipe.config.data.path)
subject = ds.subject(pipe.subject)
test = subject.test_set(repeats=3)
n = 4 if SMALL else len(test.images)
images = pipe(subject.test_betas(test)[:n], images=test.images[:n], repeats=1)
for index, image in zip(test.images[:n], images[:, 0], strict=True):
    Image.fromarray(image).save(folder / f"{int(index):05d}.png")

# %%
# Read the folder back and score it
# ---------------------------------
files = sorted(folder.glob("*.png"))
indices = np.array([int(f.stem) for f in files])
reconstructions = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
stimuli = ds.images.get(indices)
scores = score_images(stimuli, reconstructions)
for index, p, s in zip(indices, scores["PixCorr"], scores["SSIM"], strict=True):
    print(f"image {index:5d}: PixCorr {p:+.3f}  SSIM {s:.3f}")
print(
    f"mean over {len(files)} images: PixCorr {scores['PixCorr'].mean():.3f}, SSIM {scores['SSIM'].mean():.3f}"
)
