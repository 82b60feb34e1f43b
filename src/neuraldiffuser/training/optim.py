"""AdamW with decay only where the reference applies it, and the OneCycle learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from ..models.layers import takes_decay


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices and adapters with ``weight_decay``; biases and norm scales with none."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if takes_decay(name, p) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; the fused kernel (several times faster than the per-tensor loop on a CPU) when the
    weights are fp32."""
    fused = all(p.dtype == torch.float32 for p in model.parameters())
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, fused=fused)


def make_onecycle(
    optimizer: torch.optim.Optimizer,
    max_lr: float,
    total_steps: int,
    pct_start: float,
    div_factor: float = 25.0,
    final_div_factor: float = 1000.0,
):
    """OneCycle with cosine annealing: lr rises from max_lr/div to max_lr over ``pct_start`` of the steps,
    then falls to max_lr/(div·final_div). Momentum (Adam's β1) cycles as torch's default does."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(int(total_steps), 2),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal_strategy="cos",
    )
