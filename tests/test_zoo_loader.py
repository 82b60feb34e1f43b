"""The component loader: tiny stacks round-trip, hooks sit where the reference says, hub ids fail clearly."""

from __future__ import annotations

import pytest
import torch

from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.errors import ModelLoadError
from neuraldiffuser.zoo.build import build_stack, sd14_configs
from neuraldiffuser.zoo.loader import Components


def test_real_clip_bpe_gives_the_known_ids(clip_tokenizer_dir):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(clip_tokenizer_dir)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408
    padded = tok("a red star", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == 49407


def test_tiny_stack_reloads_to_identical_outputs(tiny_stack, tmp_path):
    a = Components(ZooConfig(path=str(tiny_stack)))
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    lat = a.vae.encode(x * 2 - 1).latent_dist.mode()
    assert lat.shape == (2, 4, 8, 8) and a.latent_shape == (4, 8, 8) and a.resolution == 16
    c = a.encode_text(["a red star", "two blue circles"])
    assert c.shape == (2, 77, 16)
    eps = a.unet(lat, 500, encoder_hidden_states=c).sample
    g = a.guidance(x)
    # save again and reload: identical numbers
    a.unet.save_pretrained(tmp_path / "unet")
    b = Components(ZooConfig(path=str(tiny_stack)))
    torch.testing.assert_close(b.vae.encode(x * 2 - 1).latent_dist.mode(), lat, rtol=0, atol=0)
    torch.testing.assert_close(b.encode_text(["a red star", "two blue circles"]), c, rtol=0, atol=0)
    torch.testing.assert_close(b.unet(lat, 500, encoder_hidden_states=c).sample, eps, rtol=0, atol=0)
    torch.testing.assert_close(b.guidance(x), g, rtol=0, atol=0)


def test_guidance_hooks_are_mlp_outputs_of_blocks_1_to_6(tiny_stack):
    comp = Components(ZooConfig(path=str(tiny_stack)))
    enc = comp.guidance
    assert enc.layer_names[0] == "block1.mlp (Linear-2)" and enc.layer_names[-1] == "block6.mlp (Linear-12)"
    x = torch.rand(3, 3, 20, 20)
    feats = enc(x)
    assert feats.shape == (3, 6, 17, 16)  # (32/8)^2 + 1 tokens, width 16
    # independent computation: run the full tower and take block k's MLP branch by hand
    tower = enc._tower()
    h = tower.pre_layrnorm(tower.embeddings(enc.preprocess(x)))
    for k, block in enumerate(tower.encoder.layers[:6]):
        res = h
        a, _ = block.self_attn(hidden_states=block.layer_norm1(h), attention_mask=None)
        h = res + a
        mlp = block.mlp(block.layer_norm2(h))
        torch.testing.assert_close(feats[:, k], mlp, rtol=1e-5, atol=1e-6)
        h = h + mlp


def test_vit_b32_from_its_config_gives_50x768_per_layer():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from neuraldiffuser.zoo.guidance import GuidanceEncoder

    cfg = CLIPVisionConfig(**sd14_configs()["vision"])
    enc = GuidanceEncoder(CLIPVisionModel(cfg), layers=[0, 1, 2, 3, 4, 5]).eval()
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, 64, 64))
    assert feats.shape == (1, 6, 50, 768)
    assert feats[0].reshape(6, -1).shape[1] == 38400  # the reference's flattened (1, 38400) per layer


def test_imagenet_normalisation_and_resize(tiny_stack):
    enc = Components(ZooConfig(path=str(tiny_stack))).guidance
    x = torch.full((1, 3, 64, 64), 0.5)
    y = enc.preprocess(x)
    assert y.shape == (1, 3, 32, 32)
    torch.testing.assert_close(
        y[0, :, 0, 0], (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    )


def test_hub_id_without_network_names_the_model_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_cache"))
    comp = Components(ZooConfig(path="CompVis/stable-diffusion-v1-4"))
    with pytest.raises(ModelLoadError) as info:
        comp.vae  # noqa: B018
    msg = str(info.value)
    assert (
        "CompVis/stable-diffusion-v1-4" in msg
        and "(vae)" in msg
        and "zoo.path=" in msg
        and "huggingface-cli download" in msg
    )


def test_missing_subfolder_and_bad_layers(tiny_stack, tmp_path):
    with pytest.raises(ModelLoadError, match="no 'unet/' folder"):
        Components(ZooConfig(path=str(tmp_path))).unet  # noqa: B018
    with pytest.raises(ModelLoadError, match=r"guidance layers \[9\] out of range"):
        Components(ZooConfig(path=str(tiny_stack), guidance_layers=[0, 9])).guidance  # noqa: B018
    with pytest.raises(ModelLoadError, match="no built-in zoo 'nope'"):
        Components(ZooConfig(path="builtin:nope"))


def test_build_stack_writes_loadable_folders(tmp_path, clip_tokenizer_dir):
    from neuraldiffuser.zoo.build import tiny_configs

    out = build_stack(tmp_path / "s", tiny_configs(), tokenizer_dir=clip_tokenizer_dir)
    assert {p.name for p in out.iterdir()} == {
        "vae",
        "unet",
        "scheduler",
        "tokenizer",
        "text_encoder",
        "clip",
    }
    sched = Components(ZooConfig(path=str(out))).scheduler
    assert sched.config.steps_offset == 1 and sched.config.beta_schedule == "scaled_linear"


def test_guidance_encoder_survives_deepcopy_and_antialias_flag(tiny_stack):
    import copy

    enc = Components(ZooConfig(path=str(tiny_stack))).guidance
    twin = copy.deepcopy(enc)
    x = torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(twin(x), enc(x), rtol=0, atol=0)
    sharp = Components(ZooConfig(path=str(tiny_stack), guidance_antialias=False)).guidance
    assert not torch.equal(sharp.preprocess(x), enc.preprocess(x))
    import torch.nn.functional as F

    expected = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(sharp.preprocess(x), (expected - sharp.mean) / sharp.std)
