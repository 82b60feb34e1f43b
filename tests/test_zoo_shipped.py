"""The shipped mini zoo: loads offline through the one loader, runs an img2img step, and its quality
file is complete."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.zoo.loader import BUILTIN_DIR, Components
from neuraldiffuser.zoo.train.quality import TARGETS, ssim_rgb, to_uint8

ZOO = BUILTIN_DIR / "insilico-64"


@pytest.fixture(scope="module")
def comp():
    return Components(ZooConfig(path="builtin:insilico-64"))


@pytest.fixture(scope="module")
def scenes():
    from neuraldiffuser.simulate.scenes import generate_scenes

    s = generate_scenes(4, seed=2024)  # not the training seed (11)
    return torch.from_numpy(s.images).permute(0, 3, 1, 2).float() / 255, [c[0] for c in s.captions], s.images


def test_shipped_zoo_is_small_and_complete():
    files = [f for f in ZOO.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 60 * 2**20
    for part in ("vae", "unet", "text_encoder", "clip"):
        assert any(f.suffix == ".safetensors" for f in (ZOO / part).iterdir()), part
    assert (ZOO / "README.md").is_file() and "neuraldiffuser zoo train" in (ZOO / "README.md").read_text()


def test_one_img2img_step_offline(comp, scenes):
    from diffusers import DDIMScheduler

    x, captions, originals = scenes
    assert comp.resolution == 64 and comp.latent_shape == (4, 16, 16)
    with torch.no_grad():
        z = comp.vae.encode(x * 2 - 1).latent_dist.mode() * comp.latent_scale
        sched = DDIMScheduler.from_config(comp.scheduler.config)
        sched.set_timesteps(50)
        t = sched.timesteps[50 - 37]  # img2img at strength 0.75 starts at t = 721
        assert int(t) == 721
        noisy = sched.add_noise(z, torch.randn(z.shape, generator=torch.Generator().manual_seed(0)), t)
        ctx = torch.cat([comp.unconditional(len(x)), comp.encode_text(captions)])
        eps_u, eps_c = comp.unet(torch.cat([noisy, noisy]), t, encoder_hidden_states=ctx).sample.chunk(2)
        step = sched.step(eps_u + 7.5 * (eps_c - eps_u), t, noisy)
        image = comp.vae.decode(step.pred_original_sample / comp.latent_scale).sample
        recon = comp.vae.decode(z / comp.latent_scale).sample
    assert z.shape == (4, 4, 16, 16) and ctx.shape == (8, 32, comp.text_encoder.config.hidden_size)
    assert (
        image.shape == (4, 3, 64, 64)
        and torch.isfinite(image).all()
        and torch.isfinite(step.prev_sample).all()
    )
    # the one-step x0 prediction already points at the image's latent, far above what noise would give
    r = torch.nn.functional.cosine_similarity(step.pred_original_sample.flatten(1), z.flatten(1))
    assert (r > 0.3).all(), r
    # the autoencoder reconstructs scenes it never saw
    assert ssim_rgb(originals, to_uint8(recon / 2 + 0.5)).mean() > 0.85


def test_guidance_encoder_gives_six_layers_of_65_tokens(comp, scenes):
    x, _, _ = scenes
    with torch.no_grad():
        g = comp.guidance(x)
    width = comp.guidance.width
    assert g.shape == (4, 6, 65, width) and torch.isfinite(g).all()
    assert comp.guidance.layer_names[0] == "block1.mlp (Linear-2)"


def test_quality_json_has_every_measure_and_consistent_verdicts():
    q = json.loads((ZOO / "quality.json").read_text())
    assert q["n"] == 100 and q["autoencoder"]["n"] >= 100 and "skimage" in q["ssim_settings"]
    s = q["summary"]
    for key, target in TARGETS.items():
        assert 0 <= s[key] <= 1
        assert s["met"][key] == (s[key] >= target)
    assert s["met"]["guided_improves_ssim"] == (
        q["img2img"]["guided"]["ssim"] > q["img2img"]["unguided"]["ssim"]
    )
    assert q["img2img"]["guided"]["kappa"] > 0 and q["img2img"]["unguided"]["kappa"] == 0
    assert np.isclose(s["clip_image_to_text_top1"], q["clip"]["image_to_text_top1"])
