"""One training stage of one decoder through ``accelerate``: one code path for a CPU, one GPU, several
GPUs or nodes, in fp32, bf16 or fp16.

Exact resume: the batch content is a function of (seed, stage, epoch, step) (see ``batches``), every
random draw of a step comes from generators seeded with (seed, stage, step), and a checkpoint holds
the model, optimiser, LR schedule, RNG states and the step counter. A run killed at any moment and
resumed from its last checkpoint therefore ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.sections.train import TrainConfig
from ..errors import ConfigError, RunError
from ..utils.io import atomic_dir, atomic_write_json
from ..utils.progress import progress_bar
from . import checkpoint
from .batches import TrainingData, step_rng
from .losses import ContrastiveSchedule, global_partners, mixco_apply, mixco_draws
from .objective import StepContext, objective
from .optim import make_onecycle, make_optimizer
from .prefetch import DeviceFeeder, prefetched

STAGE_CODES = {"pretrain": 1, "finetune": 2}


@contextmanager
def _silent():
    class _Bar:
        def advance(self, n: int = 1, info: str | None = None) -> None:
            pass

        def set_completed(self, n: int) -> None:
            pass

    yield _Bar()


def seed_step(seed: int, device: torch.device) -> None:
    """``torch.manual_seed`` for the generators a step uses (the CPU's and, under CUDA, the GPUs'), without
    its lazy seeding of every other backend, which formats stack traces: ~0.1–0.5 ms a call, every step."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    elif device.type != "cpu":
        torch.manual_seed(seed)


@dataclass
class StagePlan:
    stage: str  # "pretrain" | "finetune"
    model_name: str
    epochs: int
    out_dir: Path  # RUN/<stage>/<model_name>

    @property
    def code(self) -> int:
        return STAGE_CODES[self.stage]


class Trainer:
    """Trains ``model`` on ``data`` for one stage and writes ``out_dir/model`` (config.json + safetensors)."""

    def __init__(
        self,
        accelerator: Any,
        model: torch.nn.Module,
        data: TrainingData,
        cfg: TrainConfig,
        plan: StagePlan,
        seed: int,
        latent_scale: float = 1.0,
    ):
        self.acc, self.data, self.cfg, self.plan, self.seed = accelerator, data, cfg, plan, int(seed)
        self.latent_scale = float(latent_scale)
        self.per_subject = data.per_subject(cfg.batch_size)
        self.batch = self.per_subject * len(data.pools)
        if self.batch % accelerator.num_processes:
            raise ConfigError(
                f"global batch {self.batch} does not split evenly "
                f"across {accelerator.num_processes} processes",
                fix="choose train.batch_size as a multiple of (subjects × processes)",
            )
        self.local = self.batch // accelerator.num_processes
        self.steps_per_epoch = max(1, (cfg.epoch_samples or data.n_trials) // self.batch)
        self.total = plan.epochs * self.steps_per_epoch
        self.schedule = ContrastiveSchedule(
            plan.epochs, cfg.mixco_fraction, cfg.mixco_temperature, *cfg.softclip_temperature
        )
        self.token_heads = model.token_heads()
        self.priors = {h: model.targets[h].prior for h in self.token_heads}
        optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
        self.sched = make_onecycle(
            optimizer, cfg.lr, self.total, cfg.pct_start, cfg.div_factor, cfg.final_div_factor
        )
        # the Accelerator is made with step_scheduler_with_optimizer=False, so the
        # schedule steps once per step
        self.model, self.opt, self.sched = accelerator.prepare(model, optimizer, self.sched)
        self._plan_epoch, self._plan = -1, None
        self.feeder, self.data_wait_s = DeviceFeeder(accelerator.device), 0.0
        # the prior's noise is drawn where it is used: on one CPU core a c model's 42 × 77 × 768 normal draw
        # takes longer than its whole step on an H100 (benchmarks/data_io.py); the CPU path keeps its draws
        self.draw_device = accelerator.device if accelerator.device.type == "cuda" else None
        # a reader thread pays off where the step waits on an accelerator; on a CPU its torch work competes
        # with the step's for the same cores (the demo's training: 71 s with it, 52 s without, on 2 cores)
        self.prefetch_depth = 3 if accelerator.device.type != "cpu" else 0

    # ------------------------------------------------------------------ one step

    def _batch(self, step: int) -> dict:
        """The global batch of ``step`` (called in order, from the prefetch thread)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._plan_epoch:
            self._plan = self.data.epoch_plan(
                self.seed, self.plan.code, epoch, self.steps_per_epoch, self.per_subject
            )
            self._plan_epoch = epoch
        return self.data.global_batch(self._plan, k)

    def _host(self, step: int) -> dict:
        """What the CPU prepares for ``step``, made in the reader thread while the previous step runs: the
        global batch, the voxel mixup, the prior's draws and this process's slices, as tensors (under CUDA
        already on their way to the device). The draws come from generators seeded with (seed, stage, step),
        in the order a step that prepared its own would take them, so the values do not
        depend on the thread."""
        batch = self._batch(step)
        rng = step_rng(self.seed, self.plan.code, 7, step)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        phase, temp = self.schedule.at(step // self.steps_per_epoch)
        voxels = [torch.from_numpy(np.ascontiguousarray(v)) for v in batch["voxels"]]
        perm = lam = None
        if phase == "bimixco" and self.token_heads:
            perms, lams = [], []
            for i, v in enumerate(voxels):
                d = mixco_draws(len(v), rng, self.cfg.mixco_beta, self.cfg.mixco_prob)
                p, lm = torch.from_numpy(d["perm"]), torch.from_numpy(d["lam"])
                voxels[i] = mixco_apply(v, p, lm)
                perms.append(p)
                lams.append(lm)
            perm, lam = global_partners(perms, self.cfg.mixco_partner_offset), torch.cat(lams)
        lo = self.acc.process_index * self.local
        hi = lo + self.local
        draw_seed = int(gen.initial_seed())
        draws = None if self.draw_device is not None else self._draws(gen, lo, hi)
        names, groups, start = [], [], 0
        for (name, n), v in zip(batch["names"], voxels, strict=True):
            a, b = max(lo, start), min(hi, start + n)
            if a < b:
                names.append(name)
                groups.append(v[a - start : b - start])
            start += n
        targets = {h: torch.from_numpy(np.ascontiguousarray(t)) for h, t in batch["targets"].items()}
        tensors = {"targets": targets, "draws": draws, "groups": groups, "perm": perm, "lam": lam}
        sent, ready = self.feeder.send(tensors)
        dropout = int(rng.integers(2**62))
        return {
            "phase": phase,
            "temp": temp,
            "names": names,
            "tensors": sent,
            "ready": ready,
            "dropout": dropout,
            "draw_seed": draw_seed,
        }

    def _draws(self, gen: torch.Generator, lo: int, hi: int) -> dict[str, dict[str, torch.Tensor]]:
        """The priors' noise for the global batch (made whole, then sliced: independent of
        the process count)."""
        out = {}
        for h, prior in self.priors.items():
            d = {} if prior is None else prior.noise_inputs(self.batch, gen)
            out[h] = {k: v[lo:hi] for k, v in d.items()}
        return out

    def _device_draws(self, seed: int, lo: int, hi: int) -> dict[str, dict[str, torch.Tensor]]:
        """The priors' noise drawn on ``draw_device`` from the step's seed (a few kernels, no host work)."""
        return self._draws(torch.Generator(device=self.draw_device).manual_seed(seed), lo, hi)

    def _inputs(self, step: int, host: dict) -> tuple[list, dict, StepContext]:
        """The step thread's share: wait for the copies (on the device), put what is not there yet there."""
        t = self.feeder.receive(host["tensors"], host["ready"])
        dev = self.acc.device
        lo, hi = self.acc.process_index * self.local, self.acc.process_index * self.local + self.local

        def to(x):
            return None if x is None else x.to(dev, non_blocking=True)  # a no-op where it is already there

        targets = {h: to(v) for h, v in t["targets"].items()}
        if t["draws"] is None:
            t["draws"] = self._device_draws(host["draw_seed"], lo, hi)
        prior_inputs = {
            h: {"x0": targets[h][lo:hi], **{k: to(v) for k, v in d.items()}} for h, d in t["draws"].items()
        }
        groups = [(name, to(v)) for name, v in zip(host["names"], t["groups"], strict=True)]
        ctx = StepContext(host["phase"], host["temp"], targets, lo, hi, to(t["perm"]), to(t["lam"]))
        seed_step(host["dropout"] + self.acc.process_index, dev)  # dropout
        return groups, prior_inputs, ctx

    def _step(self, step: int, host: dict) -> dict[str, float]:
        groups, prior_inputs, ctx = self._inputs(step, host)
        self.model.train()
        with self.acc.autocast():
            outputs = self.model(groups, prior_inputs)
            loss, logs = objective(outputs, ctx, self.cfg, self.latent_scale)
        self.acc.backward(loss)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        logs["lr"] = self.sched.get_last_lr()[0]
        return logs

    # ------------------------------------------------------------------ the stage

    def run(self) -> dict[str, Any]:
        ckpt_root = self.plan.out_dir / "checkpoints"
        start = 0
        found = checkpoint.latest(ckpt_root)
        if found is not None:
            start = int(checkpoint.load(self.acc, found)["step"])
        t0, logs, last_saved = time.perf_counter(), {}, start
        tag = f"{self.plan.stage}/{self.plan.model_name}"
        bar_ctx = (
            progress_bar(f"{self.plan.stage} {self.plan.model_name}", self.total)
            if self.acc.is_main_process
            else _silent()
        )
        # the next step's inputs are made while this step runs (same batches, in the same order: a
        # thread, not a reorder)
        self.data_wait_s = 0.0
        with bar_ctx as bar:
            bar.set_completed(start)
            for step, host, waited in prefetched(self._host, start, self.total, self.prefetch_depth):
                self.data_wait_s += waited
                logs = self._step(step, host)
                done = step + 1
                self._require_finite(logs["loss"], done, last_saved)
                if done % max(self.cfg.log_every, 1) == 0 or done == self.total:
                    self.acc.log({f"{tag}/{k}": v for k, v in logs.items()}, step=done)
                    bar.advance(info=f"loss {logs['loss']:.4g}")
                else:
                    bar.advance()
                if done % max(self.cfg.checkpoint_every, 1) == 0 and done < self.total:
                    checkpoint.save(self.acc, ckpt_root, done, self._state(), self.cfg.keep_checkpoints)
                    last_saved = done
        if (
            last_saved != self.total and self.cfg.keep_finished_checkpoints
        ):  # else the final model is all that stays
            checkpoint.save(self.acc, ckpt_root, self.total, self._state(), self.cfg.keep_checkpoints)
        summary = {
            "stage": self.plan.stage,
            "model": self.plan.model_name,
            "steps": self.total,
            "resumed_from": start,
            "steps_per_epoch": self.steps_per_epoch,
            "global_batch": self.batch,
            "processes": self.acc.num_processes,
            "data": self.data.preload_note,
            "data_wait_s": round(self.data_wait_s, 3),  # the step thread waited this long for the reader
            "seconds": time.perf_counter() - t0,
            "final": logs,
        }
        self._save_final(summary)
        return summary

    def _require_finite(self, loss: float, step: int, last_saved: int) -> None:
        """Stop at the first non-finite loss (on any process), before a checkpoint could keep its weights."""
        ok = math.isfinite(loss)
        if self.acc.num_processes > 1:  # every process must stop at the same step
            flag = torch.tensor([float(ok)], device=self.acc.device)
            ok = bool(self.acc.reduce(flag, reduction="sum").item() == self.acc.num_processes)
        if not ok:
            kept = (
                f"the last checkpoint (step {last_saved}) is kept"
                if last_saved
                else "no checkpoint was written"
            )
            raise RunError(
                f"training diverged: the loss is {loss} at step {step} of {self.total}; {kept}",
                where=f"{self.plan.out_dir}",
                fix="start a new run (another --out) with a lower train.lr, or check the betas and targets",
            )

    def _state(self) -> dict[str, Any]:
        return {
            "stage": self.plan.stage,
            "model": self.plan.model_name,
            "total_steps": self.total,
            "seed": self.seed,
        }

    def _save_final(self, summary: dict[str, Any]) -> None:
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.model)
            with atomic_dir(self.plan.out_dir / "model") as tmp:
                model.save_pretrained(tmp)
                atomic_write_json(tmp / "training.json", summary)
        if self.acc.is_main_process and not self.cfg.keep_finished_checkpoints:
            shutil.rmtree(
                self.plan.out_dir / "checkpoints", ignore_errors=True
            )  # resume skips a stage whose model/ exists
        self.acc.wait_for_everyone()
        # what accelerate's free_memory does, without its gc.collect() (about a second per call on a big
        # heap): forget this stage's prepared objects so the next stage's checkpoints hold only its own
        for name in ("_models", "_optimizers", "_schedulers", "_dataloaders"):
            getattr(self.acc, name).clear()
        self.acc.step = 0
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
