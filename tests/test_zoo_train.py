"""The zoo trainers on tiny data: losses fall, interrupted runs resume exactly, outputs load as
the right classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neuraldiffuser.config.sections.zoo import ZooConfig
from neuraldiffuser.errors import ConfigError, DataError
from neuraldiffuser.zoo.loader import Components
from neuraldiffuser.zoo.train import autoencoder as ae_mod
from neuraldiffuser.zoo.train.common import ssim
from neuraldiffuser.zoo.train.data import ImageCaptionData
from neuraldiffuser.zoo.train.pipeline import train_zoo
from neuraldiffuser.zoo.train.settings import ZooTrainSettings, load_settings

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220), "yellow": (240, 220, 30)}
PLACES = {"left": (slice(8, 24), slice(0, 16)), "right": (slice(8, 24), slice(16, 32))}


def square_scenes(n: int, seed: int = 0, size: int = 32) -> tuple[np.ndarray, dict[int, list[str]]]:
    """A coloured square on the left or right of a grey background; captions say which colour and where."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 128, dtype=np.uint8)
    captions = {}
    for i in range(n):
        color = list(COLORS)[rng.integers(len(COLORS))]
        place = list(PLACES)[rng.integers(len(PLACES))]
        rows, cols = PLACES[place]
        images[i, rows, cols] = COLORS[color]
        captions[i] = [f"a {color} square on the {place}", f"{color} block at the {place}"]
    return images, captions


def tiny_settings(**parts) -> ZooTrainSettings:
    base = {
        "seed": 3,
        "checkpoint_every": 5,
        "save_dtype": "float16",
        "autoencoder": dict(
            block_out_channels=[8, 16, 16],
            norm_num_groups=4,
            steps=20,
            batch_size=8,
            lr=3e-3,
            warmup=2,
            crop=None,
        ),
        "decoder": dict(steps=5, batch_size=4, lr=1e-3, warmup=1),
        "clip": dict(
            vision_width=16,
            vision_layers=6,
            vision_heads=2,
            text_width=16,
            text_layers=1,
            text_heads=2,
            max_length=16,
            projection_dim=16,
            steps=20,
            batch_size=16,
            lr=3e-3,
            warmup=2,
        ),
        "unet": dict(
            block_out_channels=[16, 32, 32],
            attention_heads=2,
            norm_num_groups=8,
            steps=10,
            batch_size=8,
            lr=1e-3,
            warmup=2,
        ),
    }
    for k, v in parts.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) else v
    return ZooTrainSettings.model_validate(base)


@pytest.fixture(scope="module")
def square_dataset(tmp_path_factory):
    from neuraldiffuser.data.layout import write_generic

    images, captions = square_scenes(48)
    return write_generic(tmp_path_factory.mktemp("squares"), images, captions, {}, meta={"kind": "stimuli"})


@pytest.fixture(scope="module")
def trained_stack(tmp_path_factory, square_dataset):
    out = tmp_path_factory.mktemp("zoo") / "stack"
    log = train_zoo(square_dataset, out, tiny_settings())
    return out, log


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((2, 20, 24, 3))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    b[1] = a[1] ** 2  # a structured difference too
    ours = ssim(
        torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2), data_range=1.0
    )
    ref = [structural_similarity(a[i], b[i], channel_axis=-1, data_range=1.0) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6)
    assert float(
        ssim(torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(a).permute(0, 3, 1, 2), 1.0)[0]
    ) == pytest.approx(1.0)


def test_data_reads_any_dataset_and_draws_captions_of_the_right_image(square_dataset, clip_tokenizer_dir):
    from transformers import CLIPTokenizer

    data = ImageCaptionData.from_dataset(square_dataset)
    assert len(data) == 48 and data.resolution == 32
    tok = CLIPTokenizer.from_pretrained(clip_tokenizer_dir)
    data.tokenize(tok, 16)
    gen = torch.Generator().manual_seed(0)
    idx = data.sample(gen, 12)
    assert len(set(idx.tolist())) == 12
    ids = data.random_tokens(idx, gen)
    assert ids.shape == (12, 16)
    for i, row in zip(idx.tolist(), ids, strict=True):
        text = tok.decode(row, skip_special_tokens=True).strip()
        assert text in [c.lower() for c in data.captions[i]]
    px = data.pixels(idx[:2])
    assert px.shape == (2, 3, 32, 32) and torch.equal(
        px[0], torch.from_numpy(data.images[idx[0]]).permute(2, 0, 1).float() / 255
    )


def test_data_refuses_missing_captions_and_odd_sizes():
    images, captions = square_scenes(3)
    with pytest.raises(DataError, match="no \\(or an empty\\) caption"):
        ImageCaptionData(images, [captions[0], [], captions[2]])
    with pytest.raises(DataError, match="square"):
        ImageCaptionData(images[:, :, :30], [captions[i] for i in range(3)])


def test_settings_validation_names_bad_keys():
    with pytest.raises(ConfigError, match="unknown key 'unet.stpes'.*unet.steps"):
        load_settings(overrides={"unet": {"stpes": 3}})
    with pytest.raises(ConfigError, match="norm_num_groups"):
        load_settings(overrides={"autoencoder": {"block_out_channels": [8, 12], "norm_num_groups": 8}})
    assert load_settings(overrides={"unet": {"steps": 7}}).unet.steps == 7


def test_stack_has_the_sd_classes_and_loads_through_components(trained_stack):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModel

    out, log = trained_stack
    comp = Components(ZooConfig(path=str(out)))
    assert isinstance(comp.vae, AutoencoderKL) and isinstance(comp.unet, UNet2DConditionModel)
    assert (
        isinstance(comp.scheduler, DDIMScheduler) and comp.scheduler.config.beta_schedule == "scaled_linear"
    )
    assert isinstance(comp.text_encoder, CLIPTextModel) and isinstance(
        CLIPModel.from_pretrained(out / "clip"), CLIPModel
    )
    assert comp.resolution == 32 and comp.latent_shape == (4, 8, 8) and comp.tokenizer.model_max_length == 16
    c = comp.encode_text(["a red square on the left"])
    assert c.shape == (1, 16, 16)
    x = torch.rand(2, 3, 32, 32)
    assert comp.guidance(x).shape == (2, 6, 17, 16)
    eps = comp.unet(torch.randn(1, 4, 8, 8), 500, encoder_hidden_states=c).sample
    assert eps.shape == (1, 4, 8, 8) and torch.isfinite(eps).all()
    assert comp.unet.mid_block.attentions[0].transformer_blocks[0].attn1 is not None  # SAG's hook point
    assert set(log["parts"]) == {"autoencoder", "decoder", "clip", "unet"} and log["total_mb"] > 0
    assert not (out / "checkpoints").exists()
    # stored in half precision, served in the loader's float32
    from safetensors import safe_open

    with safe_open(out / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    assert (
        comp.unet.dtype
        == comp.vae.dtype
        == comp.text_encoder.dtype
        == comp.guidance.vision.dtype
        == torch.float32
    )


def test_text_encoder_is_the_clip_text_tower(trained_stack):
    from transformers import CLIPModel

    out, _ = trained_stack
    comp = Components(ZooConfig(path=str(out)))
    clip = CLIPModel.from_pretrained(out / "clip").float().eval()
    ids = comp.tokenizer(
        ["a blue square on the right"], padding="max_length", max_length=16, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        torch.testing.assert_close(
            comp.text_encoder(ids).last_hidden_state, clip.text_model(input_ids=ids).last_hidden_state
        )


def test_scaling_factor_gives_unit_std_latents(trained_stack, square_dataset):
    out, log = trained_stack
    comp = Components(ZooConfig(path=str(out)))
    data = ImageCaptionData.from_dataset(square_dataset)
    with torch.no_grad():
        z = comp.vae.encode(data.pixels(torch.arange(48)) * 2 - 1).latent_dist.sample(
            generator=torch.Generator().manual_seed(1)
        )
    assert float((z * comp.latent_scale).std()) == pytest.approx(1.0, abs=0.1)
    assert comp.latent_scale == pytest.approx(1 / log["parts"]["autoencoder"]["latent_std"], rel=1e-3)


def test_losses_decrease(trained_stack):
    _, log = trained_stack
    for part in ("autoencoder", "clip"):
        hist = log["parts"][part]["history"]
        assert [h["step"] for h in hist] == [5, 10, 15, 20]
        assert hist[-1]["loss"] < hist[0]["loss"], part
    assert log["parts"]["clip"]["history"][-1]["acc"] > log["parts"]["clip"]["history"][0]["acc"]


def test_rerun_skips_finished_parts_and_refuses_other_settings(trained_stack, square_dataset):
    out, log = trained_stack
    before = (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    again = train_zoo(square_dataset, out, tiny_settings())
    assert again["parts"]["unet"]["steps"] == log["parts"]["unet"]["steps"]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    with pytest.raises(ConfigError, match="seed settings differ"):
        train_zoo(square_dataset, out, tiny_settings(seed=4))


def test_decoder_phase_keeps_the_latent_space(tmp_path, square_dataset):
    import shutil

    from safetensors.torch import load_file

    data = ImageCaptionData.from_dataset(square_dataset)
    st = tiny_settings(autoencoder={"steps": 6}, decoder={"steps": 6})
    ae_mod.train_autoencoder(data, st.autoencoder, 0, tmp_path / "vae", tmp_path / "a.pt", 3, torch.float16)
    shutil.copytree(tmp_path / "vae", tmp_path / "phase1")
    info = ae_mod.finetune_decoder(data, st.decoder, 0, tmp_path / "vae", tmp_path / "d.pt", 3, torch.float16)
    assert info["steps"] == 6 and len(info["history"]) == 2
    before = load_file(tmp_path / "phase1" / "diffusion_pytorch_model.safetensors")
    after = load_file(tmp_path / "vae" / "diffusion_pytorch_model.safetensors")
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    trained = [k for k in before if k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and trained and len(frozen) + len(trained) == len(before)
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # the UNet's latents do not move
    assert sum(not torch.equal(before[k], after[k]) for k in trained) > len(trained) // 2


def test_interrupted_autoencoder_resumes_to_the_same_weights(tmp_path, square_dataset, monkeypatch):
    data = ImageCaptionData.from_dataset(square_dataset)
    s = tiny_settings(autoencoder={"steps": 8, "crop": 16}).autoencoder

    def train(tag: str) -> dict:
        return ae_mod.train_autoencoder(
            data, s, 0, tmp_path / tag / "vae", tmp_path / tag / "ckpt.pt", 3, torch.float32
        )

    whole = train("whole")
    real_loss = ae_mod.autoencoder_loss
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # interrupted during step 5: the checkpoint holds step 3
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(ae_mod, "autoencoder_loss", failing)
    with pytest.raises(KeyboardInterrupt):
        train("split")
    assert torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)["step"] == 3
    assert not (tmp_path / "split" / "vae").exists()
    monkeypatch.setattr(ae_mod, "autoencoder_loss", real_loss)
    split = train("split")
    assert split["steps"] == whole["steps"] == 8
    from safetensors.torch import load_file

    a = load_file(tmp_path / "whole" / "vae" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "split" / "vae" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_cli_trains_one_part_with_settings_file_and_records_the_command(tmp_path, square_dataset):
    import yaml

    from neuraldiffuser.cli.main import main

    settings = tiny_settings(autoencoder={"steps": 4}).model_dump(mode="json")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(settings))
    out = tmp_path / "stack"
    args = [
        "zoo",
        "train",
        "--images",
        str(square_dataset),
        "--out",
        str(out),
        "--settings",
        str(tmp_path / "s.yaml"),
    ]
    assert (
        main([*args, "--parts", "autoencoder", "--train-set", "autoencoder.batch_size=4", "--threads", "1"])
        == 0
    )
    log = json.loads((out / "train_log.json").read_text())
    assert list(log["parts"]) == ["autoencoder"] and log["parts"]["autoencoder"]["steps"] == 4
    assert "--parts autoencoder" in log["command"] and (out / "config.yaml").is_file()
    assert (out / "vae" / "config.json").is_file() and not (out / "unet").exists()
    assert (out / "checkpoints" / "autoencoder.pt").is_file()  # kept until the whole stack is done
    assert yaml.safe_load((out / "train_settings.yaml").read_text())["autoencoder"]["batch_size"] == 4
    assert main([*args, "--parts", "unet"]) == 2  # the UNet needs the CLIP text encoder first
    assert (out / "train_log.json").read_text().count('"decoder"') == 0
    assert main([*args, "--parts", "vae"]) == 2  # unknown part name


def test_measure_quality_on_a_tiny_stack(trained_stack, square_dataset, tmp_path):
    from neuraldiffuser.config.sections.sampler import SamplerConfig
    from neuraldiffuser.sampling.sampler import NeuralDiffuserSampler
    from neuraldiffuser.zoo.train.quality import measure_quality

    out, _ = trained_stack
    sampler = SamplerConfig(steps=8, repeats=2, kappa=10.0, eta=0.5, layer_boosts=[1.5, 1.2, 1, 1, 1, 1])
    res = measure_quality(
        ZooConfig(path=str(out)),
        square_dataset,
        tmp_path / "q.json",
        n=6,
        sampler=sampler,
        t2i_steps=4,
        make_sampler=NeuralDiffuserSampler,
    )
    saved = json.loads((tmp_path / "q.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(res["summary"]))
    assert (
        saved["n"] == 6
        and saved["img2img"]["unguided"]["kappa"] == 0
        and saved["img2img"]["guided"]["kappa"] == 10.0
    )
    for key in ("autoencoder_ssim", "img2img_unguided_ssim", "img2img_guided_ssim"):
        assert -1 <= saved["summary"][key] <= 1
    assert saved["clip"]["chance_top1"] == pytest.approx(1 / 6)


def test_retrieval_scores_a_known_ranking():
    from neuraldiffuser.zoo.train.quality import retrieval

    text = torch.eye(4)
    image = torch.tensor(
        [[1.0, 0, 0, 0], [0, 0.2, 0.9, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    )  # image 1 ranks text 2 first
    r = retrieval(image, text)
    assert r["image_to_text_top1"] == 0.75 and r["image_to_text_top5"] == 1.0
    assert (
        r["text_to_image_top1"] == 1.0
    )  # text 1's best image is still image 1 (0.2 > 0), text 2's is image 2 (1.0 > 0.9)


def test_two_unet_replicas_compute_what_one_process_computes(
    trained_stack, square_dataset, tmp_path, monkeypatch
):
    from safetensors.torch import load_file
    from transformers import CLIPTokenizer

    from neuraldiffuser.zoo.train.unet import train_unet

    out, _ = trained_stack
    data = ImageCaptionData.from_dataset(square_dataset)
    data.tokenize(CLIPTokenizer.from_pretrained(out / "tokenizer"), 16)
    s = tiny_settings(unet={"steps": 3}).unet
    runs = {}
    monkeypatch.chdir(
        tmp_path
    )  # relative folders, as a user types them (the replicas' rendezvous must still be found)
    for n in (1, 2):
        info = train_unet(
            data, s, 0, out, Path(f"p{n}") / "unet", Path(f"p{n}") / "ckpt", 2, torch.float32, processes=n
        )
        runs[n] = (info, load_file(tmp_path / f"p{n}" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert runs[2][0]["steps"] == 3 and runs[2][0]["processes"] == 2
    assert [h["loss"] for h in runs[1][0]["history"]] == pytest.approx(
        [h["loss"] for h in runs[2][0]["history"]], rel=1e-4
    )
    for k, v in runs[1][1].items():
        torch.testing.assert_close(
            runs[2][1][k], v, rtol=1e-3, atol=1e-4
        )  # Adam magnifies summation-order noise


def test_unet_second_stage_starts_from_the_saved_unet(trained_stack, square_dataset, tmp_path):
    import shutil

    from safetensors.torch import load_file

    out = tmp_path / "stack"
    shutil.copytree(trained_stack[0], out)
    first = out / "unet-stage1"
    (out / "unet").rename(first)
    weights = "diffusion_pytorch_model.safetensors"
    # lr 0: the optimiser and the EMA leave the weights where they started, so they must equal stage 1's
    log = train_zoo(
        square_dataset,
        out,
        tiny_settings(unet={"steps": 2, "lr": 0.0, "init_from": str(first)}),
        parts=["unet"],
    )
    saved, start = load_file(out / "unet" / weights), load_file(first / weights)
    assert saved.keys() == start.keys() and all(torch.equal(saved[k], start[k]) for k in start)
    assert log["parts"]["unet"]["init_from"] == str(first) and log["parts"]["unet"]["steps"] == 2
    assert log["parts"]["unet"]["previous"]["steps"] == trained_stack[1]["parts"]["unet"]["steps"]
    # a second stage learns from where the first stopped: its first losses are below a fresh start's
    (out / "unet").rename(tmp_path / "lr0")
    fresh = train_zoo(square_dataset, out, tiny_settings(unet={"steps": 5}), parts=["unet"])["parts"]["unet"]
    (out / "unet").rename(tmp_path / "fresh")
    extended = train_zoo(
        square_dataset, out, tiny_settings(unet={"steps": 5, "init_from": str(first)}), parts=["unet"]
    )["parts"]["unet"]
    assert extended["history"][0]["loss"] < fresh["history"][0]["loss"]


def test_unet_init_from_refuses_another_architecture_or_a_missing_folder(
    trained_stack, square_dataset, tmp_path
):
    import shutil

    out = tmp_path / "stack"
    shutil.copytree(trained_stack[0], out)
    (out / "unet").rename(tmp_path / "old")
    other = tiny_settings(
        unet={"steps": 1, "block_out_channels": [16, 16, 32], "init_from": str(tmp_path / "old")}
    )
    with pytest.raises(ConfigError, match="block_out_channels differ"):
        train_zoo(square_dataset, out, other, parts=["unet"])
    with pytest.raises(ConfigError, match="not a saved UNet folder"):
        train_zoo(
            square_dataset, out, tiny_settings(unet={"init_from": str(tmp_path / "nowhere")}), parts=["unet"]
        )
