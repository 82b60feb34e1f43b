"""Each departure from the authors' code is a named flag: train.z_target, train.mixco_partner_offset,
minddiffuser.captions / guidance_resize / returned_image, neuropictor.mixer_gelu. Known
answers for both values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from neuraldiffuser.config import load_config
from neuraldiffuser.config.sections.minddiffuser import MindDiffuserConfig
from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.data import open_dataset
from neuraldiffuser.errors import DataError
from neuraldiffuser.methods.minddiffuser.decoders import caption_lists
from neuraldiffuser.methods.minddiffuser.sampler import MindDiffuserSampler
from neuraldiffuser.methods.neuropictor.model import FMRIModel, TokenMixer
from neuraldiffuser.targets import extract as ex
from neuraldiffuser.targets.store import TargetStore, write_store
from neuraldiffuser.training.losses import bimixco_loss, global_partners
from neuraldiffuser.training.specs import head_keys
from neuraldiffuser.zoo.loader import Components

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def comp(tiny_stack):
    return Components(ZooConfig(path=str(tiny_stack)))


def test_presets_choose_the_reference_values_or_say_why():
    paper, mini = load_config("paper"), load_config("mini")
    assert (
        paper.train.z_target == "mode" and paper.train.mixco_partner_offset
    )  # the offset fixes a reference bug
    assert (
        paper.minddiffuser.captions,
        paper.minddiffuser.guidance_resize,
        paper.minddiffuser.returned_image,
    ) == (5, "bicubic", "last_saved")
    assert paper.neuropictor.mixer_gelu is False and paper.decoder.prior_network == "mindeye2"
    assert (mini.minddiffuser.returned_image, mini.neuropictor.mixer_gelu) == ("fresh", True)


# ---------------------------------------------------------------- z decoder target


@torch.no_grad()
def test_z_target_mode_writes_and_trains_on_the_posterior_mode(tmp_path, tiny_stack, generic_dir, comp):
    cfg = load_config(
        overrides={
            "zoo": {"path": str(tiny_stack)},
            "extract": {"targets": ["z"], "batch_size": 4},
            "train": {"z_target": "mode"},
        }
    )
    ds = open_dataset(generic_dir)
    st = TargetStore(ex.extract_targets(cfg, ds, tmp_path / "t.hdf5", components=comp))
    assert st.keys == ["z", "z_mode"]
    up = ex.resize_images(ds.images.get(np.arange(10)), 16)
    dist = comp.vae.encode(ex.to_tensor(up, torch.device("cpu"), torch.float32) * 2 - 1).latent_dist
    np.testing.assert_allclose(
        st.get("z_mode", np.arange(10)), (dist.mode() * comp.latent_scale).numpy(), atol=1e-5
    )
    noise = torch.stack([ex.z_noise(i, 42, (4, 8, 8)) for i in range(10)])
    np.testing.assert_allclose(
        st.get("z", np.arange(10)), ((dist.mean + dist.std * noise) * comp.latent_scale).numpy(), atol=1e-4
    )
    assert head_keys(st, ["z"], "mode") == {"z": ("z_mode", None)}
    assert head_keys(st, ["z"], "store") == {"z": ("z", None)}
    # decoding writes that head's output as the z the sampler reads (the paper dry run found it missing)
    from neuraldiffuser.training.decode import assemble

    pred = {"z": np.ones((2, 4, 8, 8), np.float32), "g1": np.zeros((2, 3, 5)), "g0": np.ones((2, 3, 5))}
    out = assemble(pred, {"z": ["z_mode", None], "g0": ["g", 0], "g1": ["g", 1]})
    assert sorted(out) == ["g", "z"] and out["z"] is pred["z"]
    np.testing.assert_array_equal(out["g"][:, 0], pred["g0"])


def test_z_target_mode_without_a_mode_in_the_store(tmp_path):
    z = np.zeros((3, 4, 2, 2), np.float32)
    sampled = TargetStore(
        write_store(tmp_path / "s.hdf5", np.arange(3), {"z": z}, attrs={"z_mode": "sample"})
    )
    with pytest.raises(DataError, match="no 'z_mode'"):
        head_keys(sampled, ["z"], "mode")
    moded = TargetStore(write_store(tmp_path / "m.hdf5", np.arange(3), {"z": z}, attrs={"z_mode": "mode"}))
    assert head_keys(moded, ["z"], "mode") == {"z": ("z", None)}  # z itself is already the mode


# ---------------------------------------------------------------- BiMixCo partners across subjects


def test_partner_indices_per_subject_or_as_the_reference():
    perms = [torch.tensor([1, 0, 2]), torch.tensor([2, 0, 1]), torch.tensor([0, 1])]
    assert global_partners(perms).tolist() == [1, 0, 2, 5, 3, 4, 6, 7]
    assert global_partners(perms, offset=False).tolist() == [1, 0, 2, 2, 0, 1, 0, 1]


def test_partner_offset_changes_the_soft_labels_of_later_subjects_only():
    """Sample 3 (subject 2's first, mixed with λ = 0.25 with its partner at global row 5): its row of the loss
    puts 0.75 on column 5 with the offset and on column 2 (subject 1's row) without it."""
    torch.manual_seed(0)
    preds, targs = F.normalize(torch.randn(6, 5), dim=-1), F.normalize(torch.randn(6, 5), dim=-1)
    perms = [torch.tensor([0, 1, 2]), torch.tensor([2, 1, 0])]
    lam = torch.tensor([1.0, 1.0, 1.0, 0.25, 1.0, 1.0])
    logits = preds @ targs.T / 0.006

    def expected(partner: int) -> torch.Tensor:
        labels = torch.diag(lam)  # every other sample has λ = 1: nothing on its partner
        labels[3, partner] += 0.75
        fwd = -(labels * logits.log_softmax(-1)).sum(-1).mean()
        bwd = -(labels.T * logits.T.log_softmax(-1)).sum(-1).mean()
        return (fwd + bwd) / 2

    for offset, partner in ((True, 5), (False, 2)):
        got = bimixco_loss(preds, targs, global_partners(perms, offset), lam)
        torch.testing.assert_close(got, expected(partner))


# ---------------------------------------------------------------- MindDiffuser


def test_caption_lists_take_the_first_n():
    class Fake:
        def captions_of(self, i):
            return [f"{i}-{k}" for k in range(7)]

    assert caption_lists(Fake(), np.array([3]), 5) == [["3-0", "3-1", "3-2", "3-3", "3-4"]]
    assert len(caption_lists(Fake(), np.array([3, 4]), None)[1]) == 7


SMALL = dict(steps=10, noise_index=7, denoise_steps=6, cfg_scale=5.0)


def _inputs(comp):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        g = comp.guidance(torch.rand(1, 3, 16, 16, generator=gen))[0]
    g = g * (torch.rand(g.shape, generator=gen) < 0.25)
    return torch.randn(5, 16, generator=gen), torch.randn(4, 8, 8, generator=gen), g


def test_stage_two_resize_filter(comp):
    """The loss sees the generated image resized with the chosen filter (20 px → the tower's input size)."""
    _, _, g = _inputs(comp)
    images = torch.rand(2, 3, 20, 20) * 2 - 1
    mask = (g != 0).float()
    out = {}
    for mode in ("bicubic", "bilinear"):
        s = MindDiffuserSampler(comp, MindDiffuserConfig(**SMALL, guidance_resize=mode))
        x = F.interpolate(
            ((images + 1) / 2).clamp(0, 1),
            size=(comp.guidance.image_size,) * 2,
            mode=mode,
            align_corners=False,
            antialias=comp.guidance.antialias,
        )
        x = (x - comp.guidance.mean) / comp.guidance.std
        with torch.no_grad():
            direct = comp.guidance.preprocess(((images + 1) / 2), resize=mode)
            torch.testing.assert_close(direct, x)
            out[mode] = s.loss_fn(g)(images)
            expected = s.loss_fn(g).__class__(
                lambda im, m=mode: comp.guidance(im, resize=m) * mask, g, s.config.layer_boosts
            )(images)
        torch.testing.assert_close(out[mode], expected)
    assert not torch.allclose(out["bicubic"], out["bilinear"])


def test_returned_image_last_saved_or_fresh(comp):
    """last_saved with 2 iterations is iteration 0's image: stage 1 from the unrefined z with the
    first noise draw."""
    c, z, g = _inputs(comp)
    cfg = MindDiffuserConfig(
        **SMALL, iterations=2, lr=0.05, refine_noise="fixed", returned_image="last_saved"
    )
    s = MindDiffuserSampler(comp, cfg, repeats=2)
    got = s(c, z, g, seed=4)
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn((2, 4, 8, 8), generator=gen)
    with torch.no_grad():
        first = (
            s.decode(s.denoise(s.noised(z.expand(2, -1, -1, -1), noise), c.expand(2, -1, -1))) / 2 + 0.5
        ).clamp(0, 1)
    torch.testing.assert_close(got, first, atol=1e-5, rtol=0)
    fresh = MindDiffuserSampler(comp, cfg.model_copy(update={"returned_image": "fresh"}), repeats=2)(
        c, z, g, seed=4
    )
    assert (fresh - got).abs().max() > 1e-3  # refined z, and the next noise draw


def test_returned_image_last_saved_takes_every_tenth_iteration(comp):
    c, z, g = _inputs(comp)
    cfg = MindDiffuserConfig(
        **SMALL, iterations=12, lr=0.05, refine_noise="fixed", returned_image="last_saved"
    )
    s = MindDiffuserSampler(comp, cfg)
    seen = []
    real = s.decode

    def spy(x):
        out = real(x)
        seen.append(out.detach())
        return out

    s.decode = spy
    got = s(c, z, g, seed=1)
    assert len(seen) == 12  # no fresh run after the loop
    torch.testing.assert_close(got, (seen[10] / 2 + 0.5).clamp(0, 1))


# ---------------------------------------------------------------- NeuroPictor token mixer


def test_token_mixer_without_gelu_is_one_linear_map():
    torch.manual_seed(0)
    plain, gelu = TokenMixer(6, 4, 3, gelu=False), TokenMixer(6, 4, 3, gelu=True)
    assert list(plain.state_dict()) == list(
        gelu.state_dict()
    )  # same weight names: checkpoints load either way
    gelu.load_state_dict(plain.state_dict())
    x = torch.randn(2, 6, 5)
    w1, b1, w2, b2 = plain[0].weight[..., 0], plain[0].bias, plain[2].weight[..., 0], plain[2].bias
    expect = torch.einsum("om,mi,bid->bod", w2, w1, x) + (w2 @ b1)[None, :, None] + b2[None, :, None]
    torch.testing.assert_close(plain(x), expect, atol=1e-6, rtol=1e-5)
    mid = torch.einsum("mi,bid->bmd", w1, x) + b1[None, :, None]
    torch.testing.assert_close(
        gelu(x), torch.einsum("om,bmd->bod", w2, F.gelu(mid)) + b2[None, :, None], atol=1e-6, rtol=1e-5
    )


def test_fmri_model_passes_the_flag_to_both_networks():
    m = FMRIModel(
        {"subj01": 7},
        4,
        8,
        6,
        4,
        tokens=5,
        width=8,
        adapter_width=8,
        seed_width=4,
        depth=0,
        heads=2,
        high_mid=3,
        low_mid=3,
        mixer_gelu=False,
    )
    mixers = [m.high.main[0], m.low.mix]
    assert all(isinstance(x[1], torch.nn.Identity) for x in mixers) and m.config.mixer_gelu is False
    assert isinstance(
        FMRIModel(
            {"subj01": 7},
            4,
            8,
            6,
            4,
            tokens=5,
            width=8,
            adapter_width=8,
            seed_width=4,
            depth=0,
            heads=2,
            high_mid=3,
            low_mid=3,
        ).low.mix[1],
        torch.nn.GELU,
    )
