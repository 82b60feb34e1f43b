"""What the three trainers share: the optimisation loop, exact-resume checkpoints, SSIM, saving.

Every random draw of a run (batches, captions, noise, timesteps, posterior samples) comes from one
``torch.Generator`` whose state is checkpointed with the weights, the optimiser, the learning-rate
schedule and the EMA, so stopping and rerunning gives the same weights as one uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...utils.io import atomic_dir, atomic_save
from ...utils.progress import progress_bar
from .settings import OptimSettings

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


def cosine_schedule(opt: OptimSettings) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then cosine from 1 to ``final_lr_fraction``."""

    def factor(step: int) -> float:
        if step < opt.warmup:
            return (step + 1) / max(1, opt.warmup)
        span = max(1, opt.steps - opt.warmup)
        progress = min(1.0, (step - opt.warmup) / span)
        return opt.final_lr_fraction + (1 - opt.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def make_optimizer(
    model: nn.Module, opt: OptimSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (weight decay on matrices only, not on biases, norms or CLIP's temperature) and its schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": opt.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=opt.lr, betas=(0.9, 0.99))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(opt))


@dataclass
class RunState:
    """The trainable things of one part, the generator that drives its randomness, and its history."""

    modules: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    ema: object | None = None  # diffusers.training_utils.EMAModel
    step: int = 0
    elapsed: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "history": self.history,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.elapsed, self.history = (
            int(state["step"]),
            float(state["elapsed"]),
            list(state["history"]),
        )

    def save(self, path: Path) -> None:
        atomic_save(path, lambda tmp: torch.save(self.state_dict(), tmp))

    def try_resume(self, path: Path) -> bool:
        if not path.is_file():
            return False
        self.load_state_dict(
            torch.load(path, map_location="cpu", weights_only=True)
        )  # tensors and plain values only: safe
        return True


@dataclass(frozen=True)
class Replicas:
    """A data-parallel group (torch.distributed, gloo): rank ``rank`` of ``world`` identical replicas.

    Every replica draws the same random numbers for the whole batch and keeps its slice, and gradients
    are averaged before the (identical) optimiser step, so N processes compute what one process with
    the whole batch computes. On a busy shared CPU N single-threaded processes also beat one process
    with N threads, whose threads wait for each other at every operation.
    """

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def part(self, n: int) -> slice:
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def average_grads(self, params: list[torch.Tensor]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def average(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world


class _NoBar:
    def advance(self, n: int = 1, info: str | None = None) -> None:
        pass

    def set_completed(self, n: int) -> None:
        pass


def replica_bar(replicas: Replicas, description: str, total: int):
    """A progress bar on the main replica, a silent stand-in on the others."""
    from contextlib import nullcontext

    return progress_bar(description, total) if replicas.main else nullcontext(_NoBar())


def run(
    state: RunState,
    step_fn: StepFn,
    opt: OptimSettings,
    checkpoint: Path,
    every: int,
    description: str,
    replicas: Replicas = Replicas(),
) -> RunState:
    """Optimise until ``opt.steps``: backward, clip, AdamW, schedule, EMA; checkpoint every ``every`` steps.

    The history keeps the mean of each logged number over each checkpoint interval. With replicas, the
    main one draws the progress bar and writes the checkpoints (every replica holds the same state).
    """
    params = [p for m in state.modules.values() for p in m.parameters() if p.requires_grad]
    sums: dict[str, float] = {}
    count = 0
    with replica_bar(replicas, description, opt.steps) as bar:
        bar.set_completed(state.step)
        t0 = time.perf_counter()
        while state.step < opt.steps:
            for m in state.modules.values():
                m.train()
            loss, logs = step_fn(state.step)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            replicas.average_grads(params)
            if opt.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, opt.grad_clip)
            state.optimizer.step()
            state.scheduler.step()
            if state.ema is not None:
                state.ema.step(params)
            state.step += 1
            for k, v in {"loss": loss.item(), **logs}.items():
                sums[k] = sums.get(k, 0.0) + replicas.average(v)
            count += 1
            bar.advance(info=" ".join(f"{k} {v / count:.4g}" for k, v in sums.items()))
            if state.step % every == 0 or state.step == opt.steps:
                state.history.append({"step": state.step, **{k: v / count for k, v in sums.items()}})
                sums, count = {}, 0
                now = time.perf_counter()
                state.elapsed += now - t0
                t0 = now
                if replicas.main:
                    state.save(checkpoint)
    for m in state.modules.values():
        m.eval()
    return state


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int = 7) -> torch.Tensor:
    """Mean SSIM per image of (B, C, H, W) tensors, as skimage's ``structural_similarity`` computes it
    by default (uniform 7×7 window, sample covariance, K1=0.01, K2=0.03, borders cropped, channel mean)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win_size * win_size
    cov_norm = n / (n - 1)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    mx, my = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - mx * mx)
    vy = cov_norm * (mean(y * y) - my * my)
    vxy = cov_norm * (mean(x * y) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def save_folder(model: nn.Module, folder: Path, dtype: torch.dtype) -> None:
    """``save_pretrained`` a copy of ``model`` in ``dtype`` into ``folder``, swapped in atomically."""
    with atomic_dir(folder) as tmp:
        copy.deepcopy(model).to(dtype).save_pretrained(tmp)


def seeded_generator(seed: int, part: str) -> torch.Generator:
    """One independent stream per part, derived from the run seed and the part's name."""
    offset = {"autoencoder": 1, "clip": 2, "unet": 3, "decoder": 4}[part]
    return torch.Generator().manual_seed(seed * 1000 + offset)
