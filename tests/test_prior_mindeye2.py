"""MindEye2's prior network (``decoder.prior_network: mindeye2``): shapes, condition dropout, and a forward
pass checked against an independent loop-by-loop NumPy implementation of its description."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuraldiffuser.models.brain import BrainDecoder
from neuraldiffuser.models.prior import DiffusionPrior
from neuraldiffuser.models.prior_mindeye2 import MindEye2Denoiser, relative_bucket, rotate_pairs


def _prior(**kw):
    torch.manual_seed(0)
    args = {
        "tokens": 3,
        "width": 8,
        "depth": 2,
        "heads": 3,
        "timesteps": 10,
        "cond_drop": 0.2,
        "ff_mult": 2,
        "network": "mindeye2",
        "dim_head": 4,
    }
    return DiffusionPrior(**{**args, **kw})


def test_shapes_through_the_decoder():
    heads = {
        "c": {
            "kind": "tokens",
            "tokens": 3,
            "width": 8,
            "prior_depth": 1,
            "prior_heads": 3,
            "prior_dim_head": 4,
            "timesteps": 10,
            "prior_network": "mindeye2",
        }
    }
    torch.manual_seed(0)
    model = BrainDecoder(subjects={"subj02": 7}, heads=heads, hidden=16, blocks=1)
    assert isinstance(model.targets["c"].prior.net, MindEye2Denoiser)
    g = torch.Generator().manual_seed(0)
    draws = model.targets["c"].prior.noise_inputs(5, g)
    assert set(draws) == {"t", "noise", "drop", "drop_image"}
    out = model([("subj02", torch.randn(5, 7))], {"c": {"x0": torch.randn(5, 3, 8), **draws}})
    assert out["c"]["reg_pred"].shape == (5, 3, 8)
    out["c"]["reg_pred"].pow(2).mean().backward()
    assert model.targets["c"].prior.net.learned_query.grad.abs().sum() > 0
    model.eval()
    assert model.decode("subj02", torch.randn(4, 7), steps=3, generator=g)["c"].shape == (4, 3, 8)


def test_paper_size_matches_the_reference_parameter_count():
    """dim 768, depth 6, 14 heads × 52, 77 tokens: the reference's prior has ≈ 55 M parameters."""
    net = MindEye2Denoiser(77, 768, depth=6, heads=14, dim_head=52)
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - 55.16) < 0.01


def test_condition_dropout_rate_and_null_tokens():
    prior = _prior()
    draws = prior.noise_inputs(40000, torch.Generator().manual_seed(1))
    brain, image = draws["drop"].float(), draws["drop_image"].float()
    # binomial sd at n = 40000: 0.002 for the rates, 0.001 for the joint rate
    assert abs(brain.mean() - 0.2) < 0.01 and abs(image.mean() - 0.2) < 0.01
    assert abs((brain * image).mean() - 0.04) < 0.005  # drawn independently
    net = prior.net.eval()
    x, t = torch.randn(4, 3, 8), torch.tensor([0, 3, 5, 9])
    yes = torch.ones(4, dtype=torch.bool)
    a = net(x, t, torch.randn(4, 3, 8), drop=yes)
    b = net(x, t, torch.randn(4, 3, 8), drop=yes)
    torch.testing.assert_close(a, b)  # a dropped brain condition does not reach the output
    torch.testing.assert_close(
        a, net(x, t, net.null_brain.detach().expand(4, 3, 8))
    )  # it is the null brain sequence
    cond = torch.randn(4, 3, 8)
    c = net(torch.randn(4, 3, 8), t, cond, drop_image=yes)
    torch.testing.assert_close(c, net(net.null_image.detach().expand(4, 3, 8), t, cond))
    keep = torch.tensor([True, False, True, False])
    mixed = net(x, t, cond, drop=keep)
    torch.testing.assert_close(mixed[~keep], net(x, t, cond)[~keep])
    torch.testing.assert_close(mixed[keep], net(x, t, cond, drop=yes)[keep])


def test_relative_buckets_and_rotary_known_values():
    rel = torch.tensor([3, 0, -1, -15, -16, -64, -127, -500])
    # past offsets 0..15 exact; 16 + floor(log(n/16)/log(8)·16) beyond; future keys share
    # bucket 0; capped at 31
    expect = [
        0,
        0,
        1,
        15,
        16,
        16 + int(math.log(4) / math.log(8) * 16),
        16 + int(math.log(127 / 16) / math.log(8) * 16),
        31,
    ]
    assert relative_bucket(rel).tolist() == expect
    x = torch.randn(1, 5, 6)
    y = rotate_pairs(x, 4)
    torch.testing.assert_close(y[..., 4:], x[..., 4:])
    for p in range(5):
        for i, f in enumerate((1.0, 0.01)):  # 10000^(−2i/4)
            c, s = math.cos(p * f), math.sin(p * f)
            a, b = x[0, p, 2 * i].item(), x[0, p, 2 * i + 1].item()
            assert y[0, p, 2 * i].item() == pytest.approx(a * c - b * s, abs=1e-5)
            assert y[0, p, 2 * i + 1].item() == pytest.approx(a * s + b * c, abs=1e-5)


def _np_reference(net: MindEye2Denoiser, x, t, cond) -> np.ndarray:
    """The description, one token and one head at a time, in float64 NumPy."""
    P = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}

    def ln(v, g, stable=False):
        if stable:
            v = v / v.max()
        return (v - v.mean()) / math.sqrt(v.var() + 1e-5) * g

    def silu(v):
        return v / (1 + np.exp(-v))

    d, T = net.width, net.tokens
    half = d // 2
    freqs = np.exp(-np.arange(half) * math.log(10000) / (half - 1))
    out = []
    for b in range(x.shape[0]):
        e = np.concatenate([np.sin(t[b] * freqs), np.cos(t[b] * freqs)])
        h = silu(P["time_mlp.0.weight"] @ e + P["time_mlp.0.bias"])
        h = silu(P["time_mlp.2.weight"] @ h + P["time_mlp.2.bias"])
        temb = P["time_mlp.4.weight"] @ h + P["time_mlp.4.bias"]
        seq = [cond[b, i] for i in range(T)] + [temb] + [x[b, i] + P["learned_query"][i] for i in range(T)]
        n = len(seq)
        for layer in range(len(net.attn)):
            a = f"attn.{layer}."
            H, dh = net.attn[layer].heads, net.attn[layer].dim_head
            normed = [ln(s, P[a + "norm.g"]) for s in seq]
            keys, vals = [P[a + "null_kv"][0]], [P[a + "null_kv"][1]]
            for j, s in enumerate(normed):
                kv = P[a + "to_kv.weight"] @ s
                keys.append(_rot(kv[:dh], j, net.attn[layer].rot_dim))
                vals.append(kv[dh:])
            new = []
            for i, s in enumerate(normed):
                q_all = P[a + "to_q.weight"] @ s
                heads_out = []
                for hh in range(H):
                    q = _rot(q_all[hh * dh : (hh + 1) * dh], i, net.attn[layer].rot_dim)
                    logits = []
                    for j, k in enumerate(keys):
                        off = j - i  # the null key counts as key position 0
                        m = max(-off, 0)
                        bucket = m if m < 16 else min(31, 16 + int(math.log(m / 16) / math.log(8) * 16))
                        logits.append(
                            16 * q @ k / (np.linalg.norm(q) * np.linalg.norm(k))
                            + P["rel_bias.weight"][bucket, hh]
                        )
                    w = np.exp(np.array(logits) - max(logits))
                    w /= w.sum()
                    heads_out.append(sum(wj * v for wj, v in zip(w, vals, strict=True)))
                att = ln(P[a + "to_out.weight"] @ np.concatenate(heads_out), P[a + "out_norm.g"])
                new.append(seq[i] + att)
            seq = new
            f = f"ff.{layer}."
            for i in range(n):
                u = P[f + "up.weight"] @ ln(seq[i], P[f + "norm.g"])
                a_, gate = u[: len(u) // 2], u[len(u) // 2 :]
                seq[i] = seq[i] + P[f + "down.weight"] @ (a_ * silu(gate))
        out.append([P["out.weight"] @ ln(seq[n - T + i], P["norm.g"], stable=True) for i in range(T)])
    return np.array(out)


def _rot(v, pos, rot_dim):
    v = v.copy()
    for i in range(rot_dim // 2):
        ang = pos * 10000 ** (-2 * i / rot_dim)
        a, b = v[2 * i], v[2 * i + 1]
        v[2 * i], v[2 * i + 1] = a * math.cos(ang) - b * math.sin(ang), a * math.sin(ang) + b * math.cos(ang)
    return v


def test_forward_matches_an_independent_implementation():
    torch.manual_seed(3)
    net = MindEye2Denoiser(tokens=3, width=8, depth=2, heads=2, dim_head=6, ff_mult=2).double().eval()
    with (
        torch.no_grad()
    ):  # gains and the relative bias away from their initial constants, so they are exercised
        for name, p in net.named_parameters():
            if name.endswith(".g") or name == "norm.g" or name.startswith("rel_bias"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
    x, cond = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    t = torch.tensor([2, 7])
    got = net(x, t, cond).detach().numpy()
    # the timestep embedding is computed in float32 (≈ 2e-7 here); a structural slip (e.g. the
    # LayerNorm ε) moves it by 5e-2
    np.testing.assert_allclose(got, _np_reference(net, x.numpy(), t.numpy(), cond.numpy()), rtol=0, atol=2e-6)


def test_one_training_step_known_answer():
    """The prior MSE of one step: x_t = √ᾱ·x0 + √(1−ᾱ)·ε enters the net, x0 is the target; a plain SGD step on
    the bias-free output projection moves it by −lr·∂L/∂W, with ∂L/∂W = 2/N · Σ (pred − x0) hᵀ."""
    prior = _prior().double()
    g = torch.Generator().manual_seed(2)
    draws = {k: v for k, v in prior.noise_inputs(6, g).items()}
    draws["noise"] = draws["noise"].double()
    cond, x0 = torch.randn(6, 3, 8, dtype=torch.float64), torch.randn(6, 3, 8, dtype=torch.float64)
    a = prior.alphas_cumprod[draws["t"]].double().view(-1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * draws["noise"]
    pred, target = prior.training_pair(cond, x0, **draws)
    torch.testing.assert_close(pred, prior.net(x_t, draws["t"], cond, draws["drop"], draws["drop_image"]))
    torch.testing.assert_close(target, x0)
    captured = {}
    hook = prior.net.out.register_forward_pre_hook(lambda m, inp: captured.update(h=inp[0].detach()))
    pred, _ = prior.training_pair(cond, x0, **draws)
    hook.remove()
    loss = torch.nn.functional.mse_loss(pred, x0)
    w0 = prior.net.out.weight.detach().clone()
    opt = torch.optim.SGD(prior.parameters(), lr=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    resid, h = (pred.detach() - x0).reshape(-1, 8), captured["h"].reshape(-1, 8)
    expect = w0 - 0.1 * 2 / resid.numel() * resid.T @ h
    torch.testing.assert_close(prior.net.out.weight.detach(), expect)


def test_guided_sampling_uses_both_null_sequences():
    """With cond_scale ≠ 1 the null prediction drops the brain and the image tokens (DALLE2's
    forward_with_cond_scale): one deterministic DDIM step (η = 0) from the same noise equals null +
    s·(cond − null) by hand."""
    prior = _prior().eval()
    cond = torch.randn(2, 3, 8)
    got = prior.sample(cond, steps=1, eta=0.0, cond_scale=3.0, generator=torch.Generator().manual_seed(5))
    x = torch.randn((2, 3, 8), generator=torch.Generator().manual_seed(5))
    t = torch.full((2,), 9)
    ones = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        c, n = prior.net(x, t, cond), prior.net(x, t, cond, ones, ones)
    # one trailing step from t = 9 straight to the end returns the predicted x0
    torch.testing.assert_close(got, n + 3.0 * (c - n))
    assert not torch.allclose(n, prior.net(x, t, cond, ones))  # the image tokens matter
