"""Decoder models: shapes, save/load, the fine-tune weight transfer, and the prior's schedule and sampler."""

from __future__ import annotations

import math

import pytest
import torch

from neuraldiffuser.errors import ModelLoadError
from neuraldiffuser.models.brain import BrainDecoder
from neuraldiffuser.models.prior import DiffusionPrior, make_schedule
from neuraldiffuser.models.zdecoder import LatentHead

HEADS = {
    "c": {"kind": "tokens", "tokens": 3, "width": 8, "prior_depth": 1, "prior_heads": 2, "timesteps": 10},
    "z": {
        "kind": "latent",
        "shape": [4, 8, 8],
        "map_channels": 8,
        "up_channels": [8, 16],
        "norm_groups": 4,
        "cont_dim": 6,
    },
}


def _model(subjects=None):
    torch.manual_seed(0)
    return BrainDecoder(subjects=subjects or {"subj02": 7, "subj03": 9}, heads=HEADS, hidden=16, blocks=2)


def test_forward_and_decode_shapes():
    model = _model()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 8)
    prior_inputs = {"c": {"x0": x0, **model.targets["c"].prior.noise_inputs(5, g)}}
    out = model([("subj02", torch.randn(2, 7)), ("subj03", torch.randn(3, 9))], prior_inputs)
    assert out["c"]["tokens"].shape == out["c"]["proj"].shape == out["c"]["reg_pred"].shape == (5, 3, 8)
    torch.testing.assert_close(out["c"]["reg_target"], x0)  # default statistics: raw targets
    model.set_target_stats("c", torch.full((3, 8), 2.0), torch.full((3, 8), 4.0))
    out = model([("subj02", torch.randn(5, 7))], prior_inputs)
    torch.testing.assert_close(out["c"]["reg_target"], (x0 - 2) / 4)
    assert out["z"]["z"].shape == (5, 4, 8, 8) and out["z"]["maps"].shape == (5, 16, 6)
    model.eval()
    dec = model.decode("subj03", torch.randn(4, 9), steps=3, generator=g)
    assert dec["c"].shape == (4, 3, 8) and dec["z"].shape == (4, 4, 8, 8)
    x = torch.randn(4, 9)
    direct = model.decode("subj03", x, use_prior=False)["c"]
    torch.testing.assert_close(
        direct, model.targets["c"].head(model.embed([("subj03", x)])) * 4 + 2
    )  # denormalised
    with pytest.raises(ModelLoadError, match="no adapter for subject"):
        model.decode("subj01", torch.randn(1, 7))


def test_adapters_are_per_subject():
    """Rows of one subject go through that subject's adapter only, in the order given."""
    model = _model().eval()
    a, b = torch.randn(2, 7), torch.randn(3, 9)
    both = model.embed([("subj02", a), ("subj03", b)])
    torch.testing.assert_close(both[:2], model.embed([("subj02", a)]))
    torch.testing.assert_close(both[2:], model.embed([("subj03", b)]))


def test_save_load_round_trip(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "m")
    loaded = BrainDecoder.from_pretrained(tmp_path / "m")
    assert loaded.config.subjects == {"subj02": 7, "subj03": 9} and loaded.config.heads == HEADS
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_finetune_transfer_drops_exactly_other_adapters():
    pre = _model()
    ft, info = BrainDecoder.for_subjects(pre, {"subj01": 11})
    assert sorted(info["dropped"]) == sorted(k for k in pre.state_dict() if k.startswith("adapters."))
    assert sorted(info["fresh"]) == ["adapters.layers.subj01.bias", "adapters.layers.subj01.weight"]
    assert ft.adapters.layers["subj01"].weight.shape == (16, 11)
    pre_state, ft_state = pre.state_dict(), ft.state_dict()
    shared = [k for k in ft_state if not k.startswith("adapters.")]
    assert len(shared) == len(pre_state) - len(info["dropped"])
    for k in shared:  # every shared weight starts equal to the pretrained one
        assert torch.equal(ft_state[k], pre_state[k]), k
    # a subject present in both keeps its adapter
    ft2, info2 = BrainDecoder.for_subjects(pre, {"subj02": 7})
    assert torch.equal(ft2.adapters.layers["subj02"].weight, pre.adapters.layers["subj02"].weight)
    assert all(k.startswith("adapters.layers.subj03") for k in info2["dropped"])


def test_finetune_transfer_refuses_other_architecture():
    pre = _model()
    pre.register_to_config(blocks=1)  # the config no longer describes the weights: block 1 is left over
    with pytest.raises(ModelLoadError, match="do not match"):
        BrainDecoder.for_subjects(pre, {"subj01": 7})
    bad = dict(HEADS, c=dict(HEADS["c"], width=4))
    pre_bad = BrainDecoder(subjects={"subj02": 7}, heads=bad, hidden=16, blocks=2)
    pre_bad.register_to_config(heads=HEADS)  # config says width 8, weights have width 4
    with pytest.raises(ModelLoadError, match="change shape"):
        BrainDecoder.for_subjects(pre_bad, {"subj01": 7})


def test_cosine_schedule_and_noising():
    sched = make_schedule(100)
    s = 0.008
    f = lambda t: math.cos((t / 100 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected = [min(1 - f(t + 1) / f(t), 0.999) for t in range(100)]
    torch.testing.assert_close(sched.betas, torch.tensor(expected, dtype=torch.float32))
    prior = DiffusionPrior(tokens=2, width=4, depth=1, heads=2, timesteps=100)
    x0, noise, t = torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.tensor([0, 50, 99])
    captured = {}
    prior.net.forward = lambda x_t, tt, cond, drop=None: captured.setdefault("x_t", x_t)
    _, target = prior.training_pair(torch.zeros(3, 2, 4), x0, t, noise, torch.zeros(3, dtype=torch.bool))
    a = sched.alphas_cumprod[t].view(-1, 1, 1)
    torch.testing.assert_close(target, x0)
    torch.testing.assert_close(captured["x_t"], a.sqrt() * x0 + (1 - a).sqrt() * noise)


def test_ddim_with_a_perfect_denoiser_returns_its_x0():
    """If the network always predicts the same x0, deterministic DDIM (η = 0) must end exactly there."""
    prior = DiffusionPrior(tokens=2, width=4, depth=1, heads=2, timesteps=100)
    goal = torch.randn(3, 2, 4)
    prior.net.forward = lambda x_t, tt, cond, drop=None: goal
    out = prior.sample(torch.zeros(3, 2, 4), steps=7, eta=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, goal)
    # η = 1 with a seeded generator is reproducible
    a = prior.sample(torch.zeros(3, 2, 4), steps=5, eta=1.0, generator=torch.Generator().manual_seed(1))
    b = prior.sample(torch.zeros(3, 2, 4), steps=5, eta=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_condition_dropout_uses_the_null_tokens():
    prior = DiffusionPrior(tokens=2, width=4, depth=1, heads=2, timesteps=10).eval()
    x, t = torch.randn(2, 2, 4), torch.tensor([3, 3])
    c1, c2 = torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    drop = torch.tensor([True, False])
    o1, o2 = prior.net(x, t, c1, drop), prior.net(x, t, c2, drop)
    torch.testing.assert_close(o1[0], o2[0])  # dropped: the condition does not matter
    assert not torch.allclose(o1[1], o2[1])
    draws = prior.noise_inputs(4000, torch.Generator().manual_seed(0))
    assert 0.17 < draws["drop"].float().mean() < 0.23 and draws["t"].max() < 10


def test_latent_head_upsampling():
    head = LatentHead(16, (4, 16, 16), map_channels=8, up_channels=[8, 16, 16], norm_groups=4)
    assert head.map_shape == (8, 4, 4)
    z, maps = head(torch.randn(2, 16))
    assert z.shape == (2, 4, 16, 16) and maps is None
    with pytest.raises(ValueError, match="not divisible"):
        LatentHead(16, (4, 10, 10), up_channels=[8, 16, 16], norm_groups=4)


def test_mean_of_prior_samples_varies_less():
    model = _model().eval()
    x = torch.randn(2, 9)
    single = torch.stack(
        [
            model.decode("subj03", x, steps=3, generator=torch.Generator().manual_seed(s))["c"]
            for s in range(6)
        ]
    )
    mean16 = torch.stack(
        [
            model.decode("subj03", x, steps=3, generator=torch.Generator().manual_seed(s), samples=16)["c"]
            for s in range(6)
        ]
    )
    assert mean16.shape == single.shape == (6, 2, 3, 8)
    assert mean16.std(0).mean() < 0.5 * single.std(0).mean()  # 16 samples: about a quarter of the spread
