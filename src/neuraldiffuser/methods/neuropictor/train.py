"""Training the NeuroPictor-style model with the diffusion loss (method notes §8.3).

Stages, each resumable from its last checkpoint and skipped once its model folder exists:

1. ``pretrain``: every pretraining subject (the target included by default, as the reference), one
   adapter each, the batch split equally across subjects; sem-loss weight 0 by default.
2. ``finetune``: the target subject alone; the extra high-level branch is added (zero-initialised) and
   the auxiliary text-feature loss is switched on.
3. ``cfg`` (optional): the target again at a lower learning rate, with a small fraction of samples given
   the "" context (the fMRI control kept), so that classifier-free guidance has a trained null branch.

Loss: MSE between the frozen UNet's ε̂ (with the fMRI context and the ControlNet residuals) and the
noise added to the image's latent at a uniform random timestep, plus ``w · MSE(main branch, c)`` where c
is the image's text features from targets.hdf5 (the UNet's conditioning space, mean over captions).
Trainable: adapters, fMRI encoder, both networks, the ControlNet. Frozen: UNet, VAE, text encoder.
Batches, timesteps, noise and masks are functions of (seed, stage, step), so a resumed stage
ends where an uninterrupted one would. The data plan (``TrainingData``), accelerate setup, voxel
scalers and atomic checkpoints are the decoder trainer's (``neuraldiffuser.training``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config.schema import Config
from ...errors import ConfigError, DataError
from ...training import checkpoint
from ...training.batches import TrainingData, step_rng
from ...utils.io import atomic_dir, atomic_write_json
from ...utils.progress import progress_bar

STAGE_CODES = {"pretrain": 21, "finetune": 22, "cfg": 23}
HEADS = {"z": ("z", None), "c": ("c", None)}


@dataclass
class StageSpec:
    name: str
    subjects: list[str]
    epochs: float
    batch: int
    lr: float
    sem_weight: float
    mask_rate: float
    extra_branch: bool

    @property
    def code(self) -> int:
        return STAGE_CODES[self.name]


def stage_specs(config: Config, target: str, pretrain: list[str]) -> list[StageSpec]:
    np_ = config.neuropictor
    table = {
        "pretrain": StageSpec(
            "pretrain",
            pretrain,
            np_.pretrain_epochs,
            np_.pretrain_batch_size,
            np_.lr,
            np_.pretrain_sem_loss_weight,
            0.0,
            False,
        ),
        "finetune": StageSpec(
            "finetune",
            [target],
            np_.finetune_epochs,
            np_.batch_size,
            np_.lr,
            np_.sem_loss_weight,
            0.0,
            np_.finetune_branch,
        ),
        "cfg": StageSpec(
            "cfg",
            [target],
            np_.cfg_epochs,
            np_.batch_size,
            np_.cfg_lr,
            np_.sem_loss_weight,
            np_.cfg_mask_rate,
            np_.finetune_branch,
        ),
    }
    return [table[s] for s in np_.stages]


class StageTrainer:
    """One stage: AdamW at a constant learning rate on every trainable weight, through ``accelerate``."""

    def __init__(
        self,
        acc,
        model,
        unet,
        scheduler,
        data: TrainingData,
        spec: StageSpec,
        config: Config,
        out_dir: Path,
        uncond: torch.Tensor,
    ):
        self.acc, self.unet, self.scheduler, self.data, self.spec, self.config = (
            acc,
            unet,
            scheduler,
            data,
            spec,
            config,
        )
        self.out_dir, self.uncond, self.seed = out_dir, uncond.to(acc.device), int(config.seed)
        self.per_subject = data.per_subject(spec.batch)
        self.batch = self.per_subject * len(data.pools)
        if self.batch % acc.num_processes:
            raise ConfigError(
                f"batch {self.batch} does not split evenly across {acc.num_processes} processes",
                fix="choose a batch size that is a multiple of subjects × processes",
            )
        self.local = self.batch // acc.num_processes
        self.steps_per_epoch = max(1, (config.neuropictor.epoch_samples or data.n_trials) // self.batch)
        self.total = max(1, math.ceil(spec.epochs * self.steps_per_epoch))
        opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=spec.lr,
            weight_decay=config.neuropictor.weight_decay,
        )
        self.model, self.opt = acc.prepare(model, opt)
        self._plan_epoch, self._plan = -1, None

    def inputs(self, step: int) -> dict[str, Any]:
        """This process's share of the global batch of ``step`` and its random draws."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._plan_epoch:
            self._plan = self.data.epoch_plan(
                self.seed, self.spec.code, epoch, self.steps_per_epoch, self.per_subject
            )
            self._plan_epoch = epoch
        batch = self.data.global_batch(self._plan, k)
        gen = torch.Generator().manual_seed(int(step_rng(self.seed, self.spec.code, 5, step).integers(2**62)))
        z = torch.from_numpy(np.ascontiguousarray(batch["targets"]["z"]))
        n_train = int(self.scheduler.config.num_train_timesteps)
        draws = {
            "t": torch.randint(0, n_train, (self.batch,), generator=gen),
            "noise": torch.randn(z.shape, generator=gen),
            "drop": torch.rand(self.batch, generator=gen) < self.spec.mask_rate,
        }
        lo, hi = self.acc.process_index * self.local, (self.acc.process_index + 1) * self.local
        groups, start = [], 0
        for (name, n), v in zip(batch["names"], batch["voxels"], strict=True):
            a, b = max(lo, start), min(hi, start + n)
            if a < b:
                groups.append(
                    (
                        name,
                        torch.from_numpy(np.ascontiguousarray(v[a - start : b - start])).to(self.acc.device),
                    )
                )
            start += n
        dev = self.acc.device
        out = {k: v[lo:hi].to(dev) for k, v in draws.items()}
        out.update(
            groups=groups,
            z=z[lo:hi].to(dev),
            c=torch.from_numpy(np.ascontiguousarray(batch["targets"]["c"][lo:hi])).to(dev),
        )
        return out

    def step(self, step: int) -> dict[str, float]:
        b = self.inputs(step)
        x = self.scheduler.add_noise(b["z"], b["noise"], b["t"])
        self.model.train()
        with self.acc.autocast():
            eps, main = self.model(
                b["groups"], x, b["t"], self.unet, self.uncond, b["drop"] if self.spec.mask_rate > 0 else None
            )
            diffusion = torch.nn.functional.mse_loss(eps.float(), b["noise"])
            sem = (
                torch.nn.functional.mse_loss(main.float(), b["c"])
                if self.spec.sem_weight > 0
                else torch.zeros((), device=eps.device)
            )
            loss = diffusion + self.spec.sem_weight * sem
        self.acc.backward(loss)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return {
            "loss": float(loss.detach()),
            "diffusion": float(diffusion.detach()),
            "sem": float(sem.detach()),
        }

    def run(self) -> dict[str, Any]:
        tc = self.config.train
        root = self.out_dir / "checkpoints"
        found = checkpoint.latest(root)
        start = int(checkpoint.load(self.acc, found)["step"]) if found is not None else 0
        t0, logs, history, saved = time.perf_counter(), {}, [], start
        with progress_bar(f"neuropictor {self.spec.name}", self.total) as bar:
            bar.set_completed(start)
            for step in range(start, self.total):
                logs = self.step(step)
                history.append(logs["loss"])
                done = step + 1
                bar.advance(
                    info=f"loss {logs['loss']:.4g}"
                    if done % max(tc.log_every, 1) == 0 or done == self.total
                    else None
                )
                if tc.tensorboard and done % max(tc.log_every, 1) == 0:
                    self.acc.log({f"neuropictor/{self.spec.name}/{k}": v for k, v in logs.items()}, step=done)
                if done % max(tc.checkpoint_every, 1) == 0 and done < self.total:
                    checkpoint.save(
                        self.acc,
                        root,
                        done,
                        {"stage": self.spec.name, "total_steps": self.total},
                        tc.keep_checkpoints,
                    )
                    saved = done
        if saved != self.total:
            checkpoint.save(
                self.acc,
                root,
                self.total,
                {"stage": self.spec.name, "total_steps": self.total},
                tc.keep_checkpoints,
            )
        window = max(1, len(history) // 10)
        summary = {
            "stage": self.spec.name,
            "subjects": self.spec.subjects,
            "steps": self.total,
            "resumed_from": start,
            "global_batch": self.batch,
            "steps_per_epoch": self.steps_per_epoch,
            "lr": self.spec.lr,
            "seconds": time.perf_counter() - t0,
            "final": logs,
            "loss_first_tenth": float(np.mean(history[:window])) if history else None,
            "loss_last_tenth": float(np.mean(history[-window:])) if history else None,
        }
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            with atomic_dir(self.out_dir / "model") as tmp:
                self.acc.unwrap_model(self.model).save_pretrained(tmp)
                atomic_write_json(tmp / "training.json", summary)
        self.acc.wait_for_everyone()
        forget_prepared(self.acc)
        return summary


def forget_prepared(acc) -> None:
    """Drop a finished stage's prepared model and optimiser from the accelerator (the next stage reloads the
    model from disk). Kept, each later stage's checkpoints would also hold them (model_1, optimizer_1, …, and
    a resume would read the wrong one) and, at the paper's sizes, host memory grew past 20 GB
    by the third stage."""
    for name in ("_models", "_optimizers", "_schedulers", "_dataloaders"):
        getattr(acc, name).clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def subject_lists(config: Config, ds) -> tuple[str, list[str]]:
    target = ds.subject(config.data.subject).name
    pre = config.neuropictor.pretrain_subjects
    if pre == "all":
        names = list(ds.subjects)
    elif pre == "others":
        names = [s for s in ds.subjects if s != target]
    else:
        names = [ds.subject(s).name for s in pre]
    if "pretrain" in config.neuropictor.stages and not names:
        raise ConfigError(
            "pretraining needs at least one subject",
            where="neuropictor.pretrain_subjects",
            fix="use 'all' or drop 'pretrain' from neuropictor.stages",
        )
    return target, names


def build_model(config: Config, components, store, subjects: dict[str, int], extra_branch: bool):
    """A fresh fMRI model sized to the stack (context = the c targets' shape) and a ControlNet
    copied from its UNet."""
    from .controlnet import NeuroPictor
    from .model import FMRIModel

    np_, unet = config.neuropictor, components.unet
    tokens, width = store.shape("c")
    if width != unet.config.cross_attention_dim:
        raise DataError(
            f"c targets are {width} wide but the UNet's "
            f"cross-attention expects {unet.config.cross_attention_dim}",
            where=str(store.path),
            fix="extract targets with the same zoo",
        )
    if tokens != components.tokenizer.model_max_length:
        raise DataError(
            f'c targets have {tokens} tokens but the text context ("" '
            f"for CFG) has {components.tokenizer.model_max_length}",
            where=str(store.path),
            fix="extract targets with the same zoo",
        )
    if tuple(store.shape("z")) != tuple(components.latent_shape):
        raise DataError(
            f"z targets have shape {store.shape('z')}, the stack's latents are {components.latent_shape}",
            where=str(store.path),
            fix="extract targets with the same zoo",
        )
    fmri = FMRIModel(
        subjects,
        tokens,
        width,
        int(unet.config.block_out_channels[0]),
        int(components.latent_shape[1]),
        np_.fmri_tokens,
        np_.fmri_width,
        np_.adapter_width,
        np_.token_seed_width,
        np_.encoder_depth,
        np_.encoder_heads,
        np_.high_mid_tokens,
        np_.low_mid_tokens,
        extra_branch,
        np_.dropout,
        np_.mixer_gelu,
    )
    return NeuroPictor.from_unet(fmri, unet)
