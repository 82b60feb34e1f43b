"""Target extraction on the tiny SD-shaped stack equals a direct computation, and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from neuraldiffuser.config import load_config
from neuraldiffuser.data import open_dataset
from neuraldiffuser.errors import DataError
from neuraldiffuser.targets import extract as ex
from neuraldiffuser.targets.store import TargetStore
from neuraldiffuser.zoo.loader import Components


@pytest.fixture(scope="module")
def comp(tiny_stack):
    return Components(load_config(overrides={"zoo": {"path": str(tiny_stack)}}).zoo)


def _cfg(stack, **extract):
    return load_config(overrides={"zoo": {"path": str(stack)}, "extract": {"batch_size": 4, **extract}})


@torch.no_grad()
def test_extract_equals_direct_computation(tmp_path, tiny_stack, generic_dir, comp):
    cfg = _cfg(tiny_stack, z_mode="mode", g_dtype="float32")
    ds = open_dataset(generic_dir)
    out = ex.extract_targets(cfg, ds, tmp_path / "t.hdf5", components=comp)
    images = ds.images.get(np.arange(10))
    with TargetStore(out) as st:
        assert st.done.all() and list(st.image) == list(range(10))
        assert st.shape("z") == (4, 8, 8) and st.shape("c") == (77, 16) and st.shape("g") == (6, 17, 16)
        assert (
            st.attrs["z_mode"] == "mode"
            and st.attrs["resolution"] == 16
            and st.attrs["guidance_layers"] == [0, 1, 2, 3, 4, 5]
        )
        assert st.attrs["latent_scale"] == pytest.approx(comp.vae.config.scaling_factor)
        # z: LANCZOS 8 → 16 px, [-1, 1], VAE posterior mode × scaling factor
        up = np.stack([np.asarray(Image.fromarray(im).resize((16, 16), Image.LANCZOS)) for im in images])
        x = torch.from_numpy(up).permute(0, 3, 1, 2).float() / 255
        z = comp.vae.encode(x * 2 - 1).latent_dist.mode() * comp.vae.config.scaling_factor
        np.testing.assert_allclose(st.get("z", np.arange(10)), z.numpy(), atol=1e-5)
        # c: mean over the image's captions of the last hidden state
        for i in (0, 7):
            caps = ds.captions_of(i)
            tok = comp.tokenizer(
                caps, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
            )
            c = comp.text_encoder(tok.input_ids).last_hidden_state.mean(0)
            np.testing.assert_allclose(st.get("c", [i])[0], c.numpy(), atol=1e-5)
        # g: the guidance encoder on the original 8 px image
        g = comp.guidance(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
        np.testing.assert_allclose(st.get("g", np.arange(10)), g.numpy(), atol=1e-5)


@torch.no_grad()
def test_z_sample_is_fixed_per_image(tmp_path, tiny_stack, generic_dir, comp):
    ds = open_dataset(generic_dir)
    a = ex.extract_targets(
        _cfg(tiny_stack, targets=["z"], batch_size=3), ds, tmp_path / "a.hdf5", components=comp
    )
    b = ex.extract_targets(
        _cfg(tiny_stack, targets=["z"], batch_size=10), ds, tmp_path / "b.hdf5", components=comp
    )
    za, zb = TargetStore(a).get("z", np.arange(10)), TargetStore(b).get("z", np.arange(10))
    # The batch size does not change the draws. A wrong draw moves z by about its posterior std (~0.1); the
    # encoder itself varies with the batch shape by float rounding (9e-8 here, 4e-5 for the mini zoo's VAE
    # on other x86 CPUs), so the tolerance sits between the two.
    np.testing.assert_allclose(za, zb, rtol=0, atol=1e-4)
    up = ex.resize_images(ds.images.get(np.arange(10)), 16)
    dist = comp.vae.encode(ex.to_tensor(up, torch.device("cpu"), torch.float32) * 2 - 1).latent_dist
    noise = torch.stack([ex.z_noise(i, 42, (4, 8, 8)) for i in range(10)])
    np.testing.assert_allclose(za, ((dist.mean + dist.std * noise) * comp.latent_scale).numpy(), atol=1e-5)
    assert not np.allclose(za, (dist.mode() * comp.latent_scale).numpy())
    assert TargetStore(a).attrs["z_mode"] == "sample" and TargetStore(a).attrs["z_seed"] == 42


def test_resumes_after_interruption_and_refuses_other_settings(
    tmp_path, tiny_stack, generic_dir, comp, monkeypatch
):
    ds = open_dataset(generic_dir)
    cfg = _cfg(tiny_stack, batch_size=3)
    full = TargetStore(ex.extract_targets(cfg, ds, tmp_path / "full.hdf5", components=comp))
    real_write, calls = ex.write_rows, {"write": 0, "encoded": []}

    def crash_after_two(path, rows, values):
        if calls["write"] == 2:
            raise KeyboardInterrupt
        calls["write"] += 1
        real_write(path, rows, values)

    monkeypatch.setattr(ex, "write_rows", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        ex.extract_targets(cfg, ds, tmp_path / "part.hdf5", components=comp)
    assert TargetStore(tmp_path / "part.hdf5", complete=False).done.tolist() == [True] * 6 + [False] * 4
    monkeypatch.setattr(ex, "write_rows", real_write)
    real_encode = ex.encode_captions
    monkeypatch.setattr(
        ex,
        "encode_captions",
        lambda comp, caps: calls["encoded"].append(len(caps)) or real_encode(comp, caps),
    )
    part = TargetStore(ex.extract_targets(cfg, ds, tmp_path / "part.hdf5", components=comp))
    assert calls["encoded"] == [3, 1]  # only the 4 missing images were computed
    assert part.done.all()
    for key in ("z", "c", "g"):
        np.testing.assert_array_equal(part.get(key, np.arange(10)), full.get(key, np.arange(10)))
    with pytest.raises(DataError, match="other settings"):
        ex.extract_targets(_cfg(tiny_stack, z_mode="mode"), ds, tmp_path / "part.hdf5", components=comp)
    with pytest.raises(DataError, match="not the 10 images with"):
        ex.extract_targets(_cfg(tiny_stack, targets=["c"]), ds, tmp_path / "part.hdf5", components=comp)


def test_cli_extract(tmp_path, tiny_stack, generic_dir):
    from neuraldiffuser.cli.main import main

    out = tmp_path / "targets.hdf5"
    rc = main(
        [
            "extract",
            str(generic_dir),
            "--out",
            str(out),
            "--set",
            f"zoo.path={tiny_stack}",
            "--set",
            "extract.targets=[c]",
        ]
    )
    assert rc == 0
    with TargetStore(out) as st:
        assert st.keys == ["c"] and st.done.all()
    assert (tmp_path / "targets.config.yaml").is_file()


@pytest.mark.parametrize(
    "targets, loaded",
    [
        (["z", "c", "g"], {"vae", "tokenizer", "text_encoder", "guidance"}),
        (["c"], {"tokenizer", "text_encoder"}),
        (["g"], {"guidance"}),
    ],
)
def test_extract_loads_only_what_each_target_needs(
    tmp_path, tiny_stack, generic_dir, monkeypatch, targets, loaded
):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    def refuse(*args, **kwargs):
        raise AssertionError("extract must not instantiate the UNet")

    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained", refuse)
    if "z" not in targets:
        monkeypatch.setattr(AutoencoderKL, "from_pretrained", refuse)
    cfg = _cfg(tiny_stack, targets=targets)
    comp = Components(cfg.zoo)
    out = ex.extract_targets(cfg, open_dataset(generic_dir), tmp_path / "t.hdf5", components=comp)
    models = {"unet", "vae", "tokenizer", "text_encoder", "guidance", "scheduler"}
    assert models & set(comp.__dict__) == loaded
    with TargetStore(out) as st:
        assert (
            st.done.all() and st.attrs["resolution"] == 16
        )  # the UNet's sample_size 8 × VAE factor 2, from config.json
        if "z" in targets:
            assert st.shape("z") == (4, 8, 8)
