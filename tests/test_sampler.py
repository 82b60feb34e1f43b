"""The sampler against independent computations: diffusers' own pipelines, finite differences,
the released loop."""

from __future__ import annotations

import copy

import pytest
import torch

from neuraldiffuser.config.sections.sampler import SamplerConfig
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.errors import DataError
from neuraldiffuser.sampling.guidance import FeatureLoss, GuidanceStep, layer_weights
from neuraldiffuser.sampling.reference import reference_sample
from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler, make_plan
from neuraldiffuser.zoo.loader import Components

PAPER = dict(x0_formula="released", noise_timestep="released", burn_draws=40, image_seed="same")


pytestmark = pytest.mark.usefixtures(
    "single_thread"
)  # tiny models: a second thread only adds synchronisation


@pytest.fixture(scope="module")
def comp(tiny_stack):
    return Components(ZooConfig(path=str(tiny_stack)))


@pytest.fixture(scope="module")
def inputs(comp):
    gen = torch.Generator().manual_seed(3)
    c = torch.randn(77, 16, generator=gen)
    z = torch.randn(4, 8, 8, generator=gen)
    with torch.no_grad():
        g = comp.guidance(torch.rand(1, 3, 16, 16, generator=gen))[0] * 1.3
    return c, z, g


def test_plan_is_the_released_schedule(comp):
    sched = NeuralDiffuserSampler(comp, SamplerConfig()).scheduler
    plan = make_plan(sched, SamplerConfig())
    assert plan.timesteps == list(range(721, 0, -20)) and len(plan.timesteps) == 37
    assert plan.noise_timestep == 721 and plan.guided_steps == 7
    assert make_plan(sched, SamplerConfig(noise_timestep="released")).noise_timestep == 740
    assert make_plan(sched, SamplerConfig(eta=0.4)).guided_steps == 14
    assert make_plan(sched, SamplerConfig(kappa=0.0)).guided_steps == 0


def test_layer_weights_known_answer():
    g = torch.zeros(3, 2, 2)
    g[0, 0, 0], g[1, :, :], g[2, 0, :] = 2.0, 0.5, 3.0  # norms 2, 1, √18
    inv = torch.tensor([1 / 2, 1.0, 1 / 18**0.5], dtype=torch.float64)
    expected = inv / inv.sum() * torch.tensor([1.5, 1.2, 1.0], dtype=torch.float64)
    torch.testing.assert_close(layer_weights(g, [1.5, 1.2, 1.0]), expected.float())
    with pytest.raises(DataError, match="layer boosts"):
        layer_weights(g, [1.0, 1.0])


def test_feature_loss_is_the_weighted_per_layer_mse(comp, inputs):
    _, _, g = inputs
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    loss = FeatureLoss(comp.guidance, g, [1.5, 1.2, 1, 1, 1, 1])(images)
    with torch.no_grad():
        feats = comp.guidance((images + 1) / 2)
    w = layer_weights(g, [1.5, 1.2, 1, 1, 1, 1])
    for b in range(2):
        by_hand = sum(w[k] * ((feats[b, k] - g[k]) ** 2).mean() for k in range(6))
        torch.testing.assert_close(loss[b], by_hand)


@pytest.mark.parametrize("formula", ["standard", "released"])
def test_guidance_gradient_matches_finite_differences(comp, inputs, formula):
    _, _, g = inputs
    from neuraldiffuser.zoo.guidance import GuidanceEncoder

    unet, vae = (copy.deepcopy(m).double() for m in (comp.unet, comp.vae))
    enc = GuidanceEncoder(copy.deepcopy(comp.guidance.vision), comp.guidance.layers).double()  # fresh hooks
    step = GuidanceStep(
        unet, vae, FeatureLoss(enc, g.double(), [1.5, 1.2, 1, 1, 1, 1]), kappa=50.0, x0_formula=formula
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=gen, dtype=torch.float64)
    ctx = torch.randn(2, 77, 16, generator=gen, dtype=torch.float64)
    t, a = 601, comp.scheduler.alphas_cumprod[601].double()
    eps, grad = step(x, t, a, ctx)
    assert grad.abs().max() > 0
    f = lambda y: step.objective(y, t, a, ctx)[0].item()  # noqa: E731
    for _ in range(3):
        v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        h = 1e-5
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
        assert fd == pytest.approx((grad * v).sum().item(), rel=1e-5, abs=1e-9)
    # chunked and checkpointed passes give the same gradient
    eps2, grad2 = GuidanceStep(unet, vae, step.loss, 50.0, formula, checkpoint=True)(x, t, a, ctx, chunk=1)
    torch.testing.assert_close(grad2, grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(eps2, eps, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg_scale", [7.5, 1.0])
def test_unguided_equals_diffusers_img2img(tiny_stack, comp, inputs, cfg_scale):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    c, z, _ = inputs
    cfg = SamplerConfig(steps=20, strength=0.6, sag_scale=0.0, kappa=0.0, repeats=1, cfg_scale=cfg_scale)
    ours = NeuralDiffuserSampler(comp, cfg)(c, z, seed=11)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=comp.vae,
        text_encoder=comp.text_encoder,
        tokenizer=comp.tokenizer,
        unet=comp.unet,
        scheduler=DDIMScheduler.from_config(comp.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        prompt_embeds=c[None],
        negative_prompt_embeds=comp.unconditional(1),
        image=z[None],
        strength=0.6,
        num_inference_steps=20,
        guidance_scale=cfg_scale,
        generator=torch.Generator().manual_seed(11),
        output_type="pt",
    ).images
    assert theirs.shape == ours.shape == (1, 3, 16, 16)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert (ours - NeuralDiffuserSampler(comp, cfg)(c, z, seed=12)).abs().max() > 1e-3  # the noise matters


def test_sag_equals_diffusers_sag_pipeline(tiny_stack, inputs):
    from diffusers import DDIMScheduler, StableDiffusionSAGPipeline

    c, z, _ = inputs
    ours_comp, their_comp = (Components(ZooConfig(path=str(tiny_stack))) for _ in range(2))
    cfg = SamplerConfig(steps=12, strength=1.0, sag_scale=0.75, kappa=0.0, repeats=1)
    sampler = NeuralDiffuserSampler(ours_comp, cfg)
    ours = sampler(c, z, seed=5)
    start = sampler.initial_latents(z, sampler.generator(5))
    pipe = StableDiffusionSAGPipeline(
        vae=their_comp.vae,
        text_encoder=their_comp.text_encoder,
        tokenizer=their_comp.tokenizer,
        unet=their_comp.unet,
        scheduler=DDIMScheduler.from_config(their_comp.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        prompt_embeds=c[None],
        negative_prompt_embeds=their_comp.unconditional(1),
        latents=start,
        height=16,
        width=16,
        num_inference_steps=12,
        guidance_scale=7.5,
        sag_scale=0.75,
        output_type="pt",
    ).images
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    no_sag = NeuralDiffuserSampler(ours_comp, cfg.model_copy(update={"sag_scale": 0.0}))(c, z, seed=5)
    assert (ours - no_sag).abs().max() > 1e-3  # SAG did something
    # the processor is restored after sampling
    assert (
        type(ours_comp.unet.mid_block.attentions[0].transformer_blocks[0].attn1.processor).__name__
        != "SelfAttentionStore"
    )


def test_batched_sampler_equals_the_released_loop_one_repeat_at_a_time(comp, inputs):
    c, z, g = inputs
    cfg = SamplerConfig(steps=15, repeats=3, kappa=200.0, eta=0.5, **PAPER)
    ours = NeuralDiffuserSampler(comp, cfg)(c, z, g, seed=42)
    theirs = reference_sample(comp, cfg, c, z, g, seed=42, decode_all=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)
    unguided = NeuralDiffuserSampler(comp, cfg.model_copy(update={"kappa": 0.0}))(c, z, g, seed=42)
    assert (ours - unguided).abs().max() > 1e-3  # guidance did something at this κ
    assert (ours[0] - ours[1]).abs().max() > 1e-3  # repeats differ


def test_feature_loss_with_one_target_per_row_equals_separate_losses(comp, inputs):
    _, _, g = inputs
    targets = torch.stack([g, g * 0.5 + 0.1, -g])
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    boosts = [1.5, 1.2, 1, 1, 1, 1]
    together = FeatureLoss(comp.guidance, targets, boosts)
    alone = torch.cat(
        [FeatureLoss(comp.guidance, t, boosts)(images[i : i + 1]) for i, t in enumerate(targets)]
    )
    torch.testing.assert_close(together(images), alone)
    torch.testing.assert_close(together(images[1:], slice(1, 3)), alone[1:])
    with pytest.raises(DataError, match="2 images for 3 per-row g targets"):
        together(images[:2])


@pytest.mark.parametrize("kappa", [0.0, 200.0])
def test_images_sampled_together_equal_images_sampled_alone(comp, inputs, kappa):
    c, z, g = inputs
    cs, zs, gs = [c, c * 0.8], [z, z.flip(-1)], [g, g.flip(-1) * 0.9]
    cfg = SamplerConfig(steps=12, repeats=2, kappa=kappa, eta=0.5, sag_scale=0.75)
    sampler = NeuralDiffuserSampler(comp, cfg)
    together = sampler.batch(cs, zs, gs, seeds=[5, 6])
    for i in range(2):
        alone = sampler(cs[i], zs[i], gs[i], seed=5 + i)
        assert together[i].shape == alone.shape == (2, 3, 16, 16)
        torch.testing.assert_close(together[i], alone, rtol=0, atol=1e-4)
    assert (together[0] - together[1]).abs().max() > 1e-2  # the images really are different ones


def test_kappa_zero_is_exactly_the_unguided_sampler(comp, inputs):
    c, z, g = inputs
    cfg = SamplerConfig(steps=10, repeats=2)
    zero = NeuralDiffuserSampler(comp, cfg.model_copy(update={"kappa": 0.0}))
    assert zero.plan.guided_steps == 0
    no_steps = NeuralDiffuserSampler(comp, cfg.model_copy(update={"eta": 0.0}))
    assert torch.equal(zero(c, z, g, seed=1), no_steps(c, z, g, seed=1))
    assert torch.equal(zero(c, z, None, seed=1), zero(c, z, g, seed=1))  # g is not even read


def test_same_seed_same_images(comp, inputs):
    c, z, g = inputs
    cfg = SamplerConfig(steps=10, repeats=2, kappa=100.0)
    a = NeuralDiffuserSampler(comp, cfg)(c, z, g, seed=9)
    b = NeuralDiffuserSampler(comp, cfg)(c, z, g, seed=9)
    assert torch.equal(a, b)
    assert (a - NeuralDiffuserSampler(comp, cfg)(c, z, g, seed=10)).abs().max() > 1e-3


def test_inputs_are_validated(comp, inputs):
    c, z, g = inputs
    sampler = NeuralDiffuserSampler(comp, SamplerConfig(steps=10, repeats=1))
    with pytest.raises(DataError, match="latents are"):
        sampler(c, torch.zeros(4, 16, 16), g)
    with pytest.raises(DataError, match="UNet expects"):
        sampler(torch.zeros(77, 8), z, g)
    with pytest.raises(DataError, match="70 tokens"):
        sampler(torch.zeros(70, 16), z, g)
    with pytest.raises(DataError, match="needs a g target"):
        sampler(c, z, None)
    with pytest.raises(DataError, match="guidance tower gives"):
        sampler(c, z, g[:, :5])
