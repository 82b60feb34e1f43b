"""Losses, schedules and optimiser groups against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuraldiffuser.training.losses import (
    ContrastiveSchedule,
    bimixco_loss,
    cosine_anneal,
    mixco_apply,
    mixco_draws,
    mixco_targets,
    soft_clip_loss,
    z_l1_loss,
)


def _log_softmax(row):
    row = np.asarray(row, dtype=np.float64)
    return row - math.log(np.exp(row).sum())


def test_bimixco_matches_hand_computation():
    preds = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    targs = torch.tensor([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])
    perm = torch.tensor([1, 2, 0])
    lam = torch.tensor([0.7, 1.0, 0.25])  # sample 1 unmixed
    tau = 0.5
    logits = (preds @ targs.T).numpy() / tau
    labels = np.array([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.75, 0.0, 0.25]])
    fwd = -np.mean([(labels[i] * _log_softmax(logits[i])).sum() for i in range(3)])
    bwd = -np.mean([(labels[:, j] * _log_softmax(logits[:, j])).sum() for j in range(3)])
    assert float(bimixco_loss(preds, targs, perm, lam, tau)) == pytest.approx((fwd + bwd) / 2, rel=1e-6)


def test_mixco_labels_keep_unit_mass_when_partner_is_self():
    probs = mixco_targets(torch.tensor([0, 2, 1]), torch.tensor([0.3, 0.6, 1.0]))
    expected = torch.tensor([[1.0, 0, 0], [0, 0.6, 0.4], [0, 0, 1.0]])
    torch.testing.assert_close(probs, expected)


def test_mixco_apply_and_draws():
    x = torch.arange(6.0).view(3, 2)
    mixed = mixco_apply(x, torch.tensor([2, 0, 1]), torch.tensor([0.5, 1.0, 0.25]))
    torch.testing.assert_close(
        mixed, torch.tensor([[2.0, 3.0], [2.0, 3.0], [0.25 * 4 + 0.75 * 2, 0.25 * 5 + 0.75 * 3]])
    )
    d = mixco_draws(1000, np.random.default_rng(0), beta=0.15, prob=0.5)
    assert sorted(d["perm"].tolist()) == list(range(1000))
    assert np.all(d["lam"][~d["select"]] == 1.0) and 0.4 < d["select"].mean() < 0.6
    assert np.all((d["lam"] >= 0) & (d["lam"] <= 1))


def test_soft_clip_matches_hand_computation():
    preds = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targs = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    tau = 0.25
    tt = (targs @ targs.T).numpy() / tau
    teacher = np.exp(tt) / np.exp(tt).sum(1, keepdims=True)
    student = (preds @ targs.T).numpy() / tau
    fwd = -np.mean([(teacher[i] * _log_softmax(student[i])).sum() for i in range(2)])
    bwd = -np.mean([(teacher[j] * _log_softmax(student[:, j])).sum() for j in range(2)])
    assert float(soft_clip_loss(preds, targs, tau)) == pytest.approx((fwd + bwd) / 2, rel=1e-6)
    # a student equal to the teacher's targets reaches the teacher's own entropy, and no less
    self_loss = float(soft_clip_loss(targs, targs, tau))
    entropy = -np.mean((teacher * np.log(teacher)).sum(1))
    assert self_loss == pytest.approx(entropy, rel=1e-6)


def test_temperature_anneal_endpoints_and_phases():
    temps = cosine_anneal(0.004, 0.0075, 101)
    assert temps[0] == pytest.approx(0.004) and temps[-1] == pytest.approx(0.0075)
    assert temps[50] == pytest.approx(0.0075 + (0.004 - 0.0075) / 2 * (1 + math.cos(math.pi * 50 / 100)))
    assert np.all(np.diff(temps) > 0)
    sched = ContrastiveSchedule(150, 0.33, 0.006, 0.004, 0.0075)
    assert sched.mixco_epochs == 49
    assert sched.at(0) == ("bimixco", 0.006) and sched.at(48) == ("bimixco", 0.006)
    assert sched.at(49) == ("softclip", pytest.approx(0.004)) and sched.at(149) == (
        "softclip",
        pytest.approx(0.0075),
    )


def test_onecycle_values():
    from neuraldiffuser.training.optim import make_onecycle

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    total, max_lr, pct = 101, 3e-4, 0.1
    sched = make_onecycle(opt, max_lr, total, pct, 25.0, 1000.0)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = pct * total - 1  # torch's end of warm-up step
    assert lrs[0] == pytest.approx(max_lr / 25)
    assert lrs[round(peak)] == pytest.approx(max_lr, rel=1e-3)
    assert lrs[-1] == pytest.approx(max_lr / 25 / 1000, rel=1e-6)
    # cosine warm-up and cosine decay in between: lr(s) = end + (start - end) / 2 · (1 + cos(π
    # · fraction of phase))
    lo, final = max_lr / 25, max_lr / 25 / 1000
    for s in (4, 30, 55, 90):
        if s <= peak:
            start, end, frac = lo, max_lr, s / peak
        else:
            start, end, frac = max_lr, final, (s - peak) / (total - 1 - peak)
        assert lrs[s] == pytest.approx(end + (start - end) / 2 * (1 + math.cos(math.pi * frac)), rel=1e-6)


def test_weight_decay_groups():
    from neuraldiffuser.models.brain import BrainDecoder
    from neuraldiffuser.training.optim import param_groups

    heads = {"c": {"kind": "tokens", "tokens": 2, "width": 4, "prior_depth": 1, "prior_heads": 2}}
    model = BrainDecoder(subjects={"s1": 5}, heads=heads, hidden=8, blocks=1)
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    d = {names[id(p)] for p in decay["params"]}
    nd = {names[id(p)] for p in no_decay["params"]}
    assert "adapters.layers.s1.weight" in d and "adapters.layers.s1.bias" in d  # the adapter always decays
    assert "backbone.blocks.0.1.weight" in d and "backbone.blocks.0.1.bias" in nd
    assert "backbone.blocks.0.0.weight" in nd  # LayerNorm scale
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert len(d) + len(nd) == len(list(model.parameters()))


def test_z_l1_divides_by_scale():
    a, b = torch.zeros(2, 4, 2, 2), torch.full((2, 4, 2, 2), 0.5)
    assert float(z_l1_loss(a, b, 0.18215)) == pytest.approx(0.5 / 0.18215)
