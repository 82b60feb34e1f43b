"""Backbones: real EfficientNet-Lite0 weights, weight discovery in local caches, unavailable reasons."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from neuraldiffuser.evaluation import backbones
from neuraldiffuser.evaluation.backbones import Settings, Unavailable
from neuraldiffuser.evaluation.effnet_lite import load_efficientnet_lite0
from neuraldiffuser.evaluation.preprocess import to_protocol

CATS = [281, 282, 283, 284, 285]  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = [967, 968, 504]  # espresso, cup, coffee mug
ROCKET = [657, 744, 812]  # missile, projectile, space shuttle
MOTORBIKE = [665, 670]  # moped, motor scooter


def imagenet_input(im: np.ndarray, mean, std) -> torch.Tensor:
    """Shorter side to 256, centre crop 224 (the usual ImageNet evaluation view)."""
    x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    s = 256 / min(h, w)
    x = F.interpolate(
        x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True, align_corners=False
    )
    top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
    x = x[..., top : top + 224, left : left + 224]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def labelled_photos():
    left, right, _ = data.stereo_motorcycle()
    return [
        (data.chelsea(), CATS),
        (data.coffee(), COFFEE),
        (data.rocket(), ROCKET),
        (left, MOTORBIKE),
        (right, MOTORBIKE),
    ]


@pytest.fixture(scope="module")
def class_probs():
    """Softmax outputs on the labelled photos for each padding × normalisation convention (one batch each)."""
    half, imnet = ((0.5,) * 3, (0.5,) * 3), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    same, sym = load_efficientnet_lite0(), load_efficientnet_lite0(same_padding=False)
    photos = labelled_photos()
    out = {}
    for key, model, norm in (
        ("same/half", same, half),
        ("same/imagenet", same, imnet),
        ("symmetric/half", sym, half),
    ):
        x = torch.cat([imagenet_input(p, *norm) for p, _ in photos])
        with torch.no_grad():
            out[key] = model(x).softmax(-1)
    return out, [c for _, c in photos]


def test_efficientnet_lite0_weights_are_real_imagenet_weights(class_probs):
    """Loaded strictly, the shipped weights classify real photos into the right ImageNet classes."""
    from neuraldiffuser.evaluation.effnet_lite import MEAN, STD

    assert (MEAN, STD) == ((0.5,) * 3, (0.5,) * 3)
    probs, classes = class_probs
    for p, c in zip(probs["same/half"], classes, strict=True):
        assert int(p.argmax()) in c
        assert float(p[c].sum()) > 0.5


def test_fused_channels_last_efficientnet_lite0_gives_the_same_features():
    """The evaluator folds BatchNorm into the convolutions and runs channels-last: same numbers, faster."""
    from neuraldiffuser.evaluation import effnet_lite

    x = torch.cat([imagenet_input(p, effnet_lite.MEAN, effnet_lite.STD) for p, _ in labelled_photos()[:2]])
    plain, fused = (
        load_efficientnet_lite0(),
        load_efficientnet_lite0().fuse_batchnorm().to(memory_format=torch.channels_last),
    )
    with torch.no_grad():
        a, b = plain.features(x), fused.features(x.contiguous(memory_format=torch.channels_last))
    assert a.shape == (2, 1280)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_efficientnet_lite0_padding_and_normalisation_are_the_ones_the_weights_expect(class_probs):
    """TF 'same' padding with [-1, 1] inputs explains the photos better than symmetric padding or
    ImageNet statistics."""
    probs, classes = class_probs
    nll = {
        k: np.mean([-float(torch.log(p[c].sum())) for p, c in zip(v, classes, strict=True)])
        for k, v in probs.items()
    }
    assert nll["same/half"] < nll["symmetric/half"] and nll["same/half"] < nll["same/imagenet"]


def test_missing_torchvision_and_swav_weights_are_unavailable_with_the_reason(tmp_path):
    cfg = Settings(torch_home=str(tmp_path / "torch"))
    for name, fname in (("alexnet", "alexnet-owt-7be5be79.pth"), ("swav", "swav_800ep_pretrain.pth.tar")):
        with pytest.raises(Unavailable) as err:
            backbones.locate(name, cfg)
        reason = err.value.reason
        assert str(tmp_path / "torch" / "hub" / "checkpoints" / fname) in reason
        assert "download" in reason and "TORCH_HOME" in reason


def test_missing_clip_l14_is_unavailable_without_any_download(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    with pytest.raises(Unavailable) as err:
        backbones.locate("clip_l14", Settings())
    assert (
        "openai/clip-vit-large-patch14" in err.value.reason and "huggingface-cli download" in err.value.reason
    )
    assert not (tmp_path / "empty_hub").exists()  # nothing was fetched


def _write_random_checkpoint(tmp_path, name: str) -> Settings:
    """LOADING-PATH TEST ONLY: a randomly initialised network saved under the exact expected file name."""
    import torchvision.models as tvm

    torch.manual_seed(0)
    path, _ = backbones.weight_file(name, str(tmp_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "swav":  # the hub checkpoint layout: DataParallel prefixes plus SwAV's head
        model = tvm.resnet50(weights=None)
        state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.startswith("fc.")}
        state["module.projection_head.0.weight"] = torch.zeros(8, 2048)
        state["module.prototypes.weight"] = torch.zeros(3, 8)
        torch.save({"state_dict": state, "epoch": 800}, path)
    elif name == "inception":
        torch.save(tvm.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    else:
        torch.save(getattr(tvm, name)(weights=None).state_dict(), path)
    return Settings(torch_home=str(tmp_path))


@pytest.mark.parametrize(
    "name,nodes",
    [
        ("alexnet", {"features.4": 192 * 31 * 31, "features.11": 256 * 15 * 15}),
        ("swav", {"avgpool": 2048}),
        ("inception", {"avgpool": 2048}),
    ],
)
def test_present_weights_load_and_compute_loading_path_only(tmp_path, name, nodes):
    """Tests the discovery and loading path, NOT the weights: random weights under the expected file name."""
    cfg = _write_random_checkpoint(tmp_path, name)
    assert backbones.locate(name, cfg).endswith(backbones.weight_file(name, str(tmp_path))[0].name)
    model = backbones.build(name, cfg, torch.device("cpu"))
    images = to_protocol(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    feats = model(images)
    assert {k: v.shape for k, v in feats.items()} == {k: (2, d) for k, d in nodes.items()}
    assert all(np.isfinite(v).all() and v.std() > 0 for v in feats.values())
    if name == "alexnet":  # the node is the ReLU after conv2 of the loaded network
        import torchvision.models as tvm

        ref = tvm.alexnet(weights=None)
        ref.load_state_dict(torch.load(backbones.weight_file(name, str(tmp_path))[0]))
        x = (
            F.interpolate(images, size=256, mode="bilinear")
            - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        ) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with torch.no_grad():
            np.testing.assert_allclose(
                feats["features.4"], ref.features[:5](x).flatten(1).numpy(), rtol=1e-4, atol=1e-5
            )


def test_clip_from_a_local_folder_and_the_mini_clip(tmp_path, tiny_stack):
    """The CLIP loading path (random tiny CLIPModel: loading, not weights) and the zoo's
    clip/ for mini-CLIP."""
    cfg = Settings(clip_model=str(tiny_stack / "clip"), zoo_path=str(tiny_stack))
    images = to_protocol(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    for name in ("clip_l14", "mini_clip"):
        model = backbones.build(name, cfg, torch.device("cpu"))
        emb = model(images)["embedding"]
        assert emb.shape == (3, 16) and np.isfinite(emb).all()
    assert model.size == 32 and model.info["normalisation"].startswith("CLIP statistics")
    with pytest.raises(Unavailable) as err:
        backbones.locate("mini_clip", Settings(zoo_path=str(tmp_path)))
    assert str(tmp_path / "clip" / "config.json") in err.value.reason
