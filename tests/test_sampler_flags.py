"""Each `paper` flag changes exactly what it claims and nothing else."""

from __future__ import annotations

import pytest
import torch

from neuraldiffuser.config import load_config
from neuraldiffuser.config.sections.sampler import SamplerConfig
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.sampling.guidance import predict_x0
from neuraldiffuser.sampling.methods import get_method
from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
from neuraldiffuser.zoo.loader import Components

BASE = dict(steps=10, repeats=2, kappa=150.0, eta=0.5)


pytestmark = pytest.mark.usefixtures(
    "single_thread"
)  # tiny models: a second thread only adds synchronisation


@pytest.fixture(scope="module")
def comp(tiny_stack):
    return Components(ZooConfig(path=str(tiny_stack)))


@pytest.fixture(scope="module")
def inputs(comp):
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        g = comp.guidance(torch.rand(1, 3, 16, 16, generator=gen))[0]
    return torch.randn(77, 16, generator=gen), torch.randn(4, 8, 8, generator=gen), g


def sampler(comp, **flags):
    return NeuralDiffuserSampler(comp, SamplerConfig(**{**BASE, **flags}))


def test_paper_preset_is_the_released_configuration():
    s = load_config(preset="paper").sampler
    assert (s.steps, s.strength, s.cfg_scale, s.sag_scale, s.kappa, s.eta, s.repeats) == (
        50,
        0.75,
        7.5,
        0.75,
        3e5,
        0.2,
        5,
    )
    assert s.layer_boosts == [1.5, 1.2, 1.0, 1.0, 1.0, 1.0]
    assert (s.x0_formula, s.noise_timestep, s.burn_draws, s.image_seed) == (
        "released",
        "released",
        40,
        "same",
    )
    assert load_config(preset="paper").seed == 42
    d = SamplerConfig()  # defaults fix the quirks
    assert (d.x0_formula, d.noise_timestep, d.burn_draws, d.image_seed) == (
        "standard",
        "first_step",
        0,
        "by_index",
    )


def test_x0_formula_changes_only_the_guided_steps(comp, inputs):
    c, z, g = inputs
    x = torch.tensor(0.3) * torch.ones(1)
    a = torch.tensor(0.25)
    assert predict_x0(x, torch.ones(1), a, "released").item() == pytest.approx((0.3 - 0.75) / 0.5)
    assert predict_x0(x, torch.ones(1), a, "standard").item() == pytest.approx((0.3 - 0.75**0.5) / 0.5)
    std, rel = sampler(comp), sampler(comp, x0_formula="released")
    gen = lambda: std.generator(0)  # noqa: E731
    start = std.initial_latents(z, gen())
    assert torch.equal(start, rel.initial_latents(z, gen())) and std.plan == rel.plan
    assert (std.denoise(start, c, g) - rel.denoise(start, c, g)).abs().max() > 1e-4
    unguided = dict(kappa=0.0)
    assert torch.equal(
        sampler(comp, **unguided).denoise(start, c, g),
        sampler(comp, x0_formula="released", **unguided).denoise(start, c, g),
    )


def test_noise_timestep_changes_only_the_start_noise_level(comp, inputs):
    c, z, g = inputs
    first, released = (
        NeuralDiffuserSampler(comp, SamplerConfig(noise_timestep=n)) for n in ("first_step", "released")
    )
    assert first.plan.timesteps == released.plan.timesteps and first.plan.timesteps[0] == 721
    assert (first.plan.noise_timestep, released.plan.noise_timestep) == (721, 740)
    a = first.scheduler.alphas_cumprod
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    for s, t in ((first, 721), (released, 740)):
        start = s.initial_latents(z, s.generator(0))
        torch.testing.assert_close(start[0], a[t].sqrt() * z + (1 - a[t]).sqrt() * noise)
    # the same start latents denoise identically whichever flag made them
    lo, hi = sampler(comp), sampler(comp, noise_timestep="released")
    start = lo.initial_latents(z, lo.generator(1))
    assert torch.equal(lo.denoise(start, c, g), hi.denoise(start, c, g))
    assert (lo(c, z, g, seed=1) - hi(c, z, g, seed=1)).abs().max() > 1e-4


def test_burn_draws_shift_only_the_later_repeats(comp, inputs):
    c, z, g = inputs
    plain, burnt = sampler(comp, repeats=3), sampler(comp, repeats=3, burn_draws=40)
    gen = torch.Generator().manual_seed(7)
    draws = [torch.randn(z.shape, generator=gen) for _ in range(83)]
    a = plain.scheduler.alphas_cumprod[plain.plan.noise_timestep]
    for s, idx in ((plain, [0, 1, 2]), (burnt, [0, 41, 82])):
        start = s.initial_latents(z, s.generator(7))
        for r, i in enumerate(idx):
            torch.testing.assert_close(start[r], a.sqrt() * z + (1 - a).sqrt() * draws[i])
    x, y = plain(c, z, g, seed=7), burnt(c, z, g, seed=7)
    assert torch.equal(x[0], y[0]) and (x[1:] - y[1:]).abs().amax(dim=(1, 2, 3)).min() > 1e-4


def test_image_seed_same_gives_every_image_the_same_noise(comp, inputs):
    c, z, g = inputs
    targets = {"c": c, "z": z, "g": g}
    method = get_method("neuraldiffuser")
    out = {}
    for mode in ("same", "by_index"):
        cfg = load_config(
            overrides={"zoo": {"path": comp.path}, "sampler": {**BASE, "image_seed": mode}}
        )  # the zoo it runs with
        (setting,) = method.settings(cfg, {})
        run = method.build(comp, setting, {"c": (77, 16), "z": (4, 8, 8), "g": (6, 17, 16)})
        out[mode] = (run(targets, 3), run(targets, 8))
    assert torch.equal(*out["same"])
    assert (out["by_index"][0] - out["by_index"][1]).abs().max() > 1e-4
    direct = sampler(comp)(c, z, g, seed=42 + 8)  # by_index seeds image i with seed + i
    assert torch.equal(out["by_index"][1], direct)


def test_noise_device_model_on_cpu_is_the_cpu_stream(comp, inputs):
    c, z, g = inputs
    assert torch.equal(sampler(comp, noise_device="model")(c, z, g, seed=2), sampler(comp)(c, z, g, seed=2))
