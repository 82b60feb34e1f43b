"""The NeuroPictor-style model on a tiny stack: zero-initialised ControlNet branch, injection after conv_in,
stage transfer, save/load, training lowers the loss, exact resume, a whole run, decode and reconstruct."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from decoder_fixtures import make_decoder_data
from neuraldiffuser.config import load_config
from neuraldiffuser.errors import ConfigError, ModelLoadError
from neuraldiffuser.methods.neuropictor.controlnet import FMRIControlNet, NeuroPictor, noise_prediction
from neuraldiffuser.methods.neuropictor.model import FMRIModel
from neuraldiffuser.methods.neuropictor.train import HEADS, StageTrainer, build_model, stage_specs
from neuraldiffuser.targets.store import TargetStore, write_store
from neuraldiffuser.zoo.loader import Components

TINY = {
    "fmri_tokens": 6,
    "fmri_width": 16,
    "adapter_width": 24,
    "token_seed_width": 8,
    "encoder_depth": 1,
    "encoder_heads": 2,
    "high_mid_tokens": 8,
    "low_mid_tokens": 8,
    "pretrain_batch_size": 12,
    "batch_size": 12,
    "epoch_samples": 24,
    "pretrain_epochs": 2,
    "finetune_epochs": 2,
    "cfg_epochs": 1,
    "lr": 2e-3,
    "cfg_lr": 1e-3,
    "steps": 4,
}


pytestmark = pytest.mark.usefixtures(
    "single_thread"
)  # tiny models: a second thread only adds synchronisation


@pytest.fixture(scope="module")
def problem(tmp_path_factory, tiny_stack):
    """Voxels that are linear in each image's factors; c (77 × 16) and z (4 × 8 × 8) targets that are too."""
    root = tmp_path_factory.mktemp("np")
    ds, _, f = make_decoder_data(root, subjects=(("subj01", 30), ("subj02", 36)), n_train=36, n_test=6)
    rng = np.random.default_rng(5)
    values = {
        "c": np.tanh(f @ rng.standard_normal((6, 77 * 16))).reshape(-1, 77, 16).astype(np.float32),
        "z": (f @ rng.standard_normal((6, 256)) / 2).reshape(-1, 4, 8, 8).astype(np.float32),
    }
    targets = write_store(root / "targets.hdf5", np.arange(len(f)), values, attrs={"latent_scale": 0.18215})
    config = load_config(
        overrides={
            "seed": 1,
            "data": {"path": str(ds)},
            "zoo": {"path": str(tiny_stack)},
            "neuropictor": TINY,
            "train": {"tensorboard": False, "checkpoint_every": 1000},
            "sampler": {"repeats": 2},
        }
    )
    return config, Components(config.zoo), targets, root


def fresh_model(problem, subjects=None, extra=False) -> NeuroPictor:
    config, comp, targets, _ = problem
    torch.manual_seed(0)
    with TargetStore(targets) as store:
        return build_model(config, comp, store, subjects or {"subj01": 30}, extra)


def test_zero_initialised_branch_leaves_the_unet_unchanged(problem):
    _, comp, _, _ = problem
    model = fresh_model(problem)
    x, t, ctx = torch.randn(3, 4, 8, 8), torch.tensor([5, 500, 999]), torch.randn(3, 77, 16)
    with torch.no_grad():
        plain = comp.unet(x, t, encoder_hidden_states=ctx).sample
        for cmap in (torch.randn(3, 8, 8, 8), model.fmri([("subj01", torch.randn(3, 30))])[2]):
            assert torch.equal(noise_prediction(comp.unet, model, x, t, ctx, cmap), plain)
        down, mid = model.control(x, t, ctx, torch.randn(3, 8, 8, 8))
    assert len(down) == 4 and all(d.abs().max() == 0 for d in down) and mid.abs().max() == 0
    # the ControlNet is a copy of the UNet encoder; the map is added to its conv_in output
    # (identity embedding)
    cn = model.controlnet
    assert torch.equal(cn.conv_in.weight, comp.unet.conv_in.weight) and isinstance(
        cn.controlnet_cond_embedding, torch.nn.Identity
    )
    for p, q in zip(cn.down_blocks.parameters(), comp.unet.down_blocks.parameters(), strict=True):
        assert torch.equal(p, q)
    torch.nn.init.normal_(
        cn.controlnet_down_blocks[0].weight
    )  # open the first skip: its residual is conv_in(x) + map
    cmap = torch.randn(3, 8, 8, 8)
    with torch.no_grad():
        down, _ = model.control(x, t, ctx, cmap)
        expected = cn.controlnet_down_blocks[0](cn.conv_in(x) + cmap)
    torch.testing.assert_close(down[0], expected)


def test_model_save_load_round_trip(problem, tmp_path):
    model = fresh_model(problem, extra=True)
    torch.nn.init.normal_(model.fmri.low.out.weight)
    model.save_pretrained(tmp_path / "m")
    loaded = NeuroPictor.from_pretrained(tmp_path / "m")
    model.eval()
    assert isinstance(loaded.controlnet, FMRIControlNet) and loaded.fmri.config.extra_branch
    vox = torch.randn(2, 30)
    with torch.no_grad():
        for a, b in zip(model.fmri([("subj01", vox)]), loaded.fmri([("subj01", vox)]), strict=True):
            assert torch.equal(a, b)
    for (n, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
    with pytest.raises(ModelLoadError, match="no NeuroPictor model"):
        NeuroPictor.from_pretrained(tmp_path / "none")


def test_stage_transfer_keeps_adapters_and_adds_an_identity_branch(problem):
    pre = fresh_model(problem, {"subj01": 30, "subj02": 36})
    torch.nn.init.normal_(pre.fmri.low.out.weight)
    fine, info = FMRIModel.for_stage(pre.fmri, {"subj01": 30}, extra_branch=True)
    assert list(fine.encoder.adapters.layers) == ["subj01"] and any(
        k.startswith("high.extra.") for k in info["fresh"]
    )
    assert any("adapters.layers.subj02" in k for k in info["dropped"])
    vox = torch.randn(4, 30)
    with torch.no_grad():
        for a, b in zip(pre.fmri([("subj01", vox)]), fine([("subj01", vox)]), strict=True):
            torch.testing.assert_close(a, b)  # the zero-initialised branch adds nothing yet
    new, info = FMRIModel.for_stage(pre.fmri, {"subj03": 12}, extra_branch=False)
    assert "encoder.adapters.layers.subj03.weight" in info["fresh"]
    with pytest.raises(ModelLoadError, match="no adapter"):
        fine([("subj02", torch.randn(1, 36))])


def fixed_loss(model, comp, batch, seed=0) -> float:
    """Diffusion loss on a fixed batch of voxels, latents, timesteps and noise."""
    gen = torch.Generator().manual_seed(seed)
    z = batch["z"]
    t, noise = torch.randint(0, 1000, (len(z),), generator=gen), torch.randn(z.shape, generator=gen)
    with torch.no_grad():
        eps, _ = model(batch["groups"], comp.scheduler.add_noise(z, noise, t), t, comp.unet)
    return float(torch.nn.functional.mse_loss(eps, noise))


def test_training_lowers_the_diffusion_loss(problem, tmp_path):
    from accelerate import Accelerator

    from neuraldiffuser.training.batches import TrainingData
    from neuraldiffuser.training.runner import make_pool

    config, comp, targets, _ = problem
    from neuraldiffuser.data import VoxelScaler, open_dataset

    ds = open_dataset(config.data.path)
    subj = ds.subject("subj01")
    pool = make_pool(ds, "subj01", VoxelScaler.fit(subj, subj.train_rows()), config)
    store = TargetStore(targets)
    data = TrainingData([pool], store, HEADS)
    rows = np.arange(24)
    batch = {
        "groups": [("subj01", torch.from_numpy(pool.read(rows)))],
        "z": torch.from_numpy(store.get_images("z", pool.images[rows])),
    }
    model = fresh_model(problem)
    before = fixed_loss(model, comp, batch)
    spec = stage_specs(config, "subj01", ["subj01"])[1]
    spec.epochs, spec.lr = 30, 5e-3
    summary = StageTrainer(
        Accelerator(cpu=True),
        model,
        comp.unet,
        comp.scheduler,
        data,
        spec,
        config,
        tmp_path / "finetune",
        comp.unconditional(1),
    ).run()
    after = fixed_loss(NeuroPictor.from_pretrained(tmp_path / "finetune" / "model"), comp, batch)
    assert summary["steps"] == 2 * spec.epochs and summary["final"]["sem"] > 0
    assert after < 0.8 * before, (before, after)
    store.close()


def test_interrupted_stage_resumes_to_the_same_weights(problem, tmp_path, monkeypatch):
    from neuraldiffuser.methods.neuropictor import train as train_mod
    from neuraldiffuser.methods.neuropictor.runner import train_neuropictor

    config, _, targets, _ = problem
    cfg = config.model_copy(deep=True)
    cfg.neuropictor.stages = ["finetune"]
    cfg.train.checkpoint_every = 2
    train_neuropictor(cfg, tmp_path / "full", targets)
    real, calls = train_mod.StageTrainer.step, []

    def flaky(self, step):
        calls.append(step)
        if len(calls) == 4:  # dies after the checkpoint of step 2
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(train_mod.StageTrainer, "step", flaky)
    with pytest.raises(KeyboardInterrupt):
        train_neuropictor(cfg, tmp_path / "cut", targets)
    monkeypatch.setattr(train_mod.StageTrainer, "step", real)
    summary = train_neuropictor(cfg, tmp_path / "cut", targets)
    assert summary["runs"][0]["resumed_from"] == 2
    a = NeuroPictor.from_pretrained(tmp_path / "full" / "finetune" / "model").state_dict()
    b = NeuroPictor.from_pretrained(tmp_path / "cut" / "finetune" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_whole_run_decode_and_reconstruct(problem, tmp_path):
    from neuraldiffuser.config import save_config
    from neuraldiffuser.methods.neuropictor.runner import decode_neuropictor, train_neuropictor
    from neuraldiffuser.sampling.runner import Shard, make_job, reconstruct

    config, _, targets, _ = problem
    cfg = config.model_copy(deep=True)
    cfg.neuropictor.run = str(tmp_path / "run")
    summary = train_neuropictor(cfg, tmp_path / "run", targets)
    assert [r["stage"] for r in summary["runs"]] == ["pretrain", "finetune", "cfg"] and summary["runs"][0][
        "subjects"
    ] == ["subj01", "subj02"]
    # each stage's checkpoint holds its own model and optimiser only (earlier stages' prepared
    # objects are dropped)
    for stage in ("pretrain", "finetune", "cfg"):
        (ckpt,) = sorted((tmp_path / "run" / stage / "checkpoints").glob("step-*"))[-1:]
        assert not list(ckpt.glob("model_1*")) and not list(ckpt.glob("optimizer_1*")), sorted(
            p.name for p in ckpt.iterdir()
        )
    manifest = json.loads((tmp_path / "run" / "decoders" / "manifest.json").read_text())
    assert manifest["method"] == "neuropictor" and manifest["model"] == "cfg/model"
    decoded = decode_neuropictor(cfg, tmp_path / "run", tmp_path / "run" / "decoded.hdf5")
    with TargetStore(decoded) as st:
        assert (
            st.keys == ["c"]
            and st.shape("c") == (77, 16)
            and st.attrs["method"] == "neuropictor"
            and len(st) == 6
        )
    save_config(cfg, tmp_path / "run")
    (folder,) = reconstruct(
        make_job(decoded, cfg, limit=2), tmp_path / "recon", cfg, method="neuropictor", shard=Shard()
    )
    m = json.loads((folder / "manifest.json").read_text())
    assert (
        folder.name == "steps=4_cfg=5"
        and m["complete"]
        and m["repeats"] == 2
        and len(m["files"][str(m["images"][0])]) == 2
    )
    # the pipeline: the same context as decode, the same images as reconstruct
    from PIL import Image

    from neuraldiffuser import NeuroPictorPipeline, load_pipeline
    from neuraldiffuser.data import open_dataset

    pipe = load_pipeline(tmp_path / "run")
    assert isinstance(pipe, NeuroPictorPipeline)
    subj = open_dataset(cfg.data.path).subject("subj01")
    test = subj.test_set(cfg.data.test_repeats, cfg.data.test_order)
    with TargetStore(decoded) as st:
        np.testing.assert_allclose(
            pipe.decode(subj.test_betas(test))["c"], st.get("c", np.arange(len(st))), atol=1e-5
        )
    first = int(m["images"][0])
    row = int(np.flatnonzero(test.images == first)[0])
    images = pipe(subj.test_betas(test)[row : row + 1], images=[first])
    png = np.asarray(Image.open(folder / m["files"][str(first)][1]))
    assert images.shape == (1, 2, 16, 16, 3) and np.abs(images[0, 1].astype(int) - png).max() <= 1
    import shutil

    saved = pipe.save_pretrained(tmp_path / "saved")
    moved = shutil.move(str(saved), str(tmp_path / "elsewhere"))
    again = load_pipeline(moved)
    assert (
        isinstance(again, NeuroPictorPipeline)
        and "NeuroPictorPipeline" in (tmp_path / "elsewhere" / "README.md").read_text()
    )
    assert np.array_equal(again(subj.test_betas(test)[row : row + 1], images=[first]), images)
    no_run = cfg.model_copy(deep=True)
    no_run.neuropictor.run = None
    with pytest.raises(ConfigError, match="neuropictor.run"):
        reconstruct(
            make_job(decoded, no_run, limit=1),
            tmp_path / "recon2",
            no_run,
            method="neuropictor",
            shard=Shard(),
        )


def test_pipeline_is_ddim_with_cfg_and_the_control_in_both_branches(problem):
    from diffusers import DDIMScheduler

    from neuraldiffuser.methods.neuropictor.pipeline import NeuroPictorSampler

    config, comp, _, _ = problem
    model = fresh_model(problem).eval()
    torch.nn.init.normal_(model.controlnet.controlnet_mid_block.weight, std=0.3)  # let the control act
    pipe = NeuroPictorSampler(
        comp, model, config.neuropictor.model_copy(update={"steps": 3, "cfg_scale": 5.0}), repeats=2
    )
    ctx, cmap = torch.randn(77, 16), torch.randn(8, 8, 8)
    out = pipe(ctx, cmap, seed=4)
    assert out.shape == (2, 3, 16, 16) and torch.equal(out, pipe(ctx, cmap, seed=4))
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(4))
    sched = DDIMScheduler.from_config(comp.scheduler.config)
    sched.set_timesteps(3)
    cm, u = cmap.expand(2, -1, -1, -1), comp.unconditional(2)
    with torch.no_grad():
        for t in sched.timesteps:
            eu, ec = (noise_prediction(comp.unet, model, x, t, c, cm) for c in (u, ctx.expand(2, -1, -1)))
            x = sched.step(eu + 5.0 * (ec - eu), t, x, eta=0.0).prev_sample
        image = (comp.vae.decode(x / comp.latent_scale).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    assert (out - pipe(ctx, torch.randn(8, 8, 8), seed=4)).abs().max() > 1e-3


def test_command_line_train_decode_reconstruct(problem, tmp_path):
    import yaml

    from neuraldiffuser.cli.main import main

    config, _, targets, _ = problem
    cfg_file = tmp_path / "np.yaml"
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "zoo": {"path": config.zoo.path},
                "train": {"tensorboard": False},
                "neuropictor": {**TINY, "stages": ["finetune"]},
                "sampler": {"repeats": 1},
            }
        )
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                config.data.path,
                str(targets),
                "--method",
                "neuropictor",
                "-o",
                str(run),
                "-c",
                str(cfg_file),
            ]
        )
        == 0
    )
    saved = load_config(files=[run / "config.yaml"])
    assert saved.neuropictor.run == str(run.resolve()) and saved.data.path == config.data.path
    assert (
        main(
            [
                "train",
                config.data.path,
                str(targets),
                "--method",
                "neuropictor",
                "-o",
                str(run),
                "-c",
                str(cfg_file),
                "--resume",
            ]
        )
        == 0
    )
    assert main(["decode", str(run)]) == 0
    assert (
        main(
            [
                "reconstruct",
                str(run),
                "--method",
                "neuropictor",
                "-o",
                str(tmp_path / "recon"),
                "--limit",
                "1",
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "recon" / "neuropictor" / "steps=4_cfg=5" / "manifest.json").read_text())
    assert m["complete"] and m["repeats"] == 1 and m["method"] == "neuropictor"
