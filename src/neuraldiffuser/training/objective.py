"""The per-step objective: prior MSE + contrastive loss for token heads, L1 (+ soft-contrastive) for z.

Means over samples (prior MSE, z L1) are taken over this process's slice; the accelerate/DDP
gradient average then makes them global means. Contrastive losses need the whole batch: the
projector outputs are gathered from every process with their gradient path, and the targets are
already global (every process holds the full batch), so the loss equals the one-process loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config.sections.train import TrainConfig
from .losses import bimixco_loss, flat_normalize, gather_with_grad, prior_mse, soft_clip_loss, z_l1_loss

TEACHER = "_teacher"


@dataclass
class StepContext:
    """What the objective needs besides the model outputs."""

    phase: str  # "bimixco" | "softclip"
    temperature: float
    targets: dict[str, torch.Tensor]  # global batch targets per head (and the z teacher)
    lo: int  # this process's slice of the global batch
    hi: int
    perm: torch.Tensor | None  # global mixup partner permutation (bimixco phase)
    lam: torch.Tensor | None


def objective(
    outputs: dict[str, dict[str, torch.Tensor]], ctx: StepContext, cfg: TrainConfig, latent_scale: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (for logging)."""
    total = torch.zeros((), device=next(iter(next(iter(outputs.values())).values())).device)
    logs: dict[str, float] = {}
    for head, out in outputs.items():
        target = ctx.targets[head]
        if "tokens" in out:
            reg = prior_mse(
                out["reg_pred"], out["reg_target"]
            )  # the prior's x0, or the head itself without a prior
            preds = gather_with_grad(flat_normalize(out["proj"]))
            targs = flat_normalize(target)
            if ctx.phase == "bimixco" and ctx.perm is not None:
                clip = bimixco_loss(preds, targs, ctx.perm, ctx.lam, ctx.temperature)
            else:
                clip = soft_clip_loss(preds, targs, ctx.temperature)
            total = total + cfg.prior_scale * reg + cfg.clip_scale * clip
            logs[f"{head}/prior"], logs[f"{head}/clip"] = float(reg.detach()), float(clip.detach())
        else:
            l1 = z_l1_loss(out["z"], target[ctx.lo : ctx.hi], latent_scale)
            total = total + l1
            logs[f"{head}/l1"] = float(l1.detach())
            if "maps" in out and cfg.z_cont_scale > 0:
                student = gather_with_grad(torch.nn.functional.normalize(out["maps"].float().mean(1), dim=-1))
                teacher = torch.nn.functional.normalize(ctx.targets[TEACHER].float().mean(1), dim=-1)
                cont = soft_clip_loss(student, teacher, cfg.z_cont_temperature)
                total = total + cfg.z_cont_scale * cont
                logs[f"{head}/cont"] = float(cont.detach())
    logs["loss"] = float(total.detach())
    return total, logs
