"""MindDiffuser's stages on a tiny stack: the img2img plan, stage-2 gradients, loss descent, checkpointing,
the masked loss, and reconstruct --method minddiffuser."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuraldiffuser.config import load_config
from neuraldiffuser.config.sections.minddiffuser import MindDiffuserConfig
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.errors import DataError
from neuraldiffuser.methods.minddiffuser.sampler import MindDiffuserSampler
from neuraldiffuser.sampling.guidance import layer_weights
from neuraldiffuser.targets.store import write_store
from neuraldiffuser.zoo.loader import Components

SMALL = dict(steps=10, noise_index=7, denoise_steps=6, cfg_scale=5.0)


pytestmark = pytest.mark.usefixtures(
    "single_thread"
)  # tiny models: a second thread only adds synchronisation


@pytest.fixture(scope="module")
def comp(tiny_stack):
    return Components(ZooConfig(path=str(tiny_stack)))


@pytest.fixture(scope="module")
def inputs(comp):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        g = comp.guidance(torch.rand(1, 3, 16, 16, generator=gen))[0]
    g = g * (torch.rand(g.shape, generator=gen) < 0.25)  # a 25% remain-rate mask
    return torch.randn(5, 16, generator=gen), torch.randn(4, 8, 8, generator=gen), g


def test_plan_follows_the_reference_indices(comp):
    s = MindDiffuserSampler(comp, MindDiffuserConfig())
    assert s.noise_timestep == 741  # index 37 of the ascending 50-step schedule
    assert s.timesteps[:2] == [681, 661] and s.timesteps[-1] == 1 and len(s.timesteps) == 35
    assert MindDiffuserSampler(comp, MindDiffuserConfig(**SMALL)).timesteps == [501, 401, 301, 201, 101, 1]


def test_stage_one_is_seeded_img2img_with_cfg(comp, inputs):
    c, z, _ = inputs
    cfg = MindDiffuserConfig(**SMALL, iterations=0)
    s = MindDiffuserSampler(comp, cfg, repeats=2)
    a, b = s(c, z, seed=3), s(c, z, seed=3)
    assert (
        a.shape == (2, 3, 16, 16)
        and torch.equal(a, b)
        and not torch.equal(a[0], a[1])
        and 0 <= a.min()
        and a.max() <= 1
    )
    # by hand: noise at t=701, then the 6 DDIM steps with ε_u + 5(ε_c − ε_u) against "" at 5 tokens
    gen = torch.Generator().manual_seed(3)
    x = s.scheduler.add_noise(
        z.expand(2, -1, -1, -1), torch.randn((2, 4, 8, 8), generator=gen), torch.tensor([701])
    )
    u = s.unconditional(5).expand(2, -1, -1)
    with torch.no_grad():
        for t in [501, 401, 301, 201, 101, 1]:
            eu, ec = (comp.unet(x, t, encoder_hidden_states=ctx).sample for ctx in (u, c.expand(2, -1, -1)))
            x = s.scheduler.step(eu + 5.0 * (ec - eu), t, x, eta=0.0).prev_sample
        image = (comp.vae.decode(x / comp.latent_scale).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(a, image, atol=1e-5, rtol=0)


def test_stage_two_gradient_reaches_z_and_checkpointing_does_not_change_it(comp, inputs):
    c, z, g = inputs
    grads = []
    for ckpt in (True, False):
        s = MindDiffuserSampler(comp, MindDiffuserConfig(**SMALL, gradient_checkpointing=ckpt))
        zz = z[None].clone().requires_grad_(True)
        noise = torch.randn(zz.shape, generator=torch.Generator().manual_seed(1))
        loss = s.loss_fn(g)(s.decode(s.denoise(s.noised(zz, noise), c[None]))).sum()
        loss.backward()
        grads.append(zz.grad)
    assert torch.isfinite(grads[0]).all() and grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], atol=1e-7, rtol=1e-5)


def test_masked_loss_is_the_weighted_mse_inside_the_mask(comp, inputs):
    _, _, g = inputs
    s = MindDiffuserSampler(comp, MindDiffuserConfig(**SMALL))
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        feats = comp.guidance(
            (images + 1) / 2, resize="bicubic"
        )  # minddiffuser.guidance_resize, the reference's filter
    mask = g != 0
    w = layer_weights(g, [1.5, 1.2, 1, 1, 1, 1])
    expected = ((feats * mask - g) ** 2).mean(dim=(2, 3)) @ w
    torch.testing.assert_close(s.loss_fn(g)(images), expected, atol=1e-6, rtol=1e-5)


def test_refinement_lowers_the_loss_and_updates_c_when_asked(comp, inputs):
    c, z, g = inputs
    cfg = MindDiffuserConfig(**SMALL, iterations=8, lr=0.05, refine_noise="fixed", optimise="c+z")
    s = MindDiffuserSampler(comp, cfg, repeats=2)
    out = s(c, z, g, seed=0)
    losses = np.array(s.losses)
    assert out.shape == (2, 3, 16, 16) and losses.shape == (8, 2) and np.isfinite(losses).all()
    assert (losses[-1] < 0.9 * losses[0]).all() and (np.diff(losses, axis=0) < 1e-6).mean() > 0.8
    zr, cr = s.refine(z.expand(2, -1, -1, -1), c.expand(2, -1, -1), g, torch.Generator().manual_seed(0))
    assert not torch.equal(cr[0], c) and not torch.equal(zr[0], z)
    zonly = MindDiffuserSampler(comp, cfg.model_copy(update={"optimise": "z", "iterations": 2}))
    _, c2 = zonly.refine(z[None], c[None], g, torch.Generator().manual_seed(0))
    assert torch.equal(c2[0], c)
    with pytest.raises(DataError, match="needs decoded g"):
        s(c, z)


def test_reconstruct_method_minddiffuser(tmp_path, tiny_stack, generic_dir, inputs):
    from neuraldiffuser.sampling.runner import Shard, make_job, reconstruct

    _, _, g = inputs
    rng = np.random.default_rng(0)
    values = {
        "c": rng.standard_normal((3, 5, 16)).astype(np.float32),
        "z": rng.standard_normal((3, 4, 8, 8)).astype(np.float32),
        "g": np.repeat(g.numpy()[None], 3, axis=0),
    }
    decoded = write_store(
        tmp_path / "decoded.hdf5",
        np.array([9, 7, 8]),
        values,
        attrs={"subject": "subj01", "method": "minddiffuser"},
    )
    config = load_config(
        overrides={
            "zoo": {"path": str(tiny_stack)},
            "data": {"path": str(generic_dir)},
            "sampler": {"repeats": 1},
            "minddiffuser": {**SMALL, "iterations": 2},
        }
    )
    (folder,) = reconstruct(
        make_job(decoded, config, limit=2), tmp_path / "recon", config, method="minddiffuser", shard=Shard()
    )
    assert folder.name == "iterations=2_optimise=z" and folder.parent.name == "minddiffuser"
    m = json.loads((folder / "manifest.json").read_text())
    assert (
        m["images"] == [9, 7]
        and m["repeats"] == 1
        and m["complete"]
        and m["files"]["7"] == ["images/00007_r0.png"]
    )
    # the PNG is what the sampler makes for that image (seed + image index)
    from PIL import Image

    from neuraldiffuser.sampling.runner import to_uint8

    s = MindDiffuserSampler(Components(config.zoo), config.minddiffuser)
    expected = to_uint8(
        s(torch.from_numpy(values["c"][1]), torch.from_numpy(values["z"][1]), g, seed=42 + 7)
    )[0]
    assert np.array_equal(np.asarray(Image.open(folder / "images/00007_r0.png")), expected)
    stage1 = config.model_copy(deep=True)
    stage1.minddiffuser.iterations = 0
    write_store(
        tmp_path / "cz.hdf5",
        np.array([9, 7, 8]),
        {k: values[k] for k in ("c", "z")},
        attrs={"subject": "subj01"},
    )
    (f1,) = reconstruct(
        make_job(tmp_path / "cz.hdf5", stage1, limit=1),
        tmp_path / "recon",
        stage1,
        method="minddiffuser",
        shard=Shard(),
    )
    assert f1.name == "iterations=0_optimise=z" and json.loads((f1 / "manifest.json").read_text())["complete"]
